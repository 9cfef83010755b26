"""Names of the registered datasets, architectures, their layers, and the
perceptual metrics, for config validation at workflow start without importing torch
(which costs seconds on every snakemake call). tests/test_bad_inputs.py and
tests/test_config.py check these against the registries and real models."""

PENULTIMATE = "penultimate"

# Each architecture's named layers (iriflow.archs Backbone.layer_names()), in
# forward order: its stages, then the globally pooled features.
ARCH_LAYERS = {
    "densenet121": ("stem", "block1", "block2", "block3", "block4", PENULTIMATE),
    "inceptionv3": ("stem", "mixed5", "mixed6", "mixed7", PENULTIMATE),
    "resnet18": ("stem", "layer1", "layer2", "layer3", "layer4", PENULTIMATE),
    "tv_resnet18": ("stem", "layer1", "layer2", "layer3", "layer4", PENULTIMATE),
    "tv_resnet50": ("stem", "layer1", "layer2", "layer3", "layer4", PENULTIMATE),
    "vgg16bn": ("block1", "block2", "block3", "block4", "block5", PENULTIMATE),
}
ARCH_NAMES = tuple(sorted(ARCH_LAYERS))
DATASET_NAMES = ("cifar10", "cifar100", "imagefolder", "mnist5k")
METRIC_NAMES = ("fsim", "gmsd", "l2", "lpips", "mdsi", "ms_ssim", "ssim", "vsi")
