"""Names of the registered architectures and perceptual metrics, for config
validation at workflow start without importing torch (which costs seconds on
every snakemake call). tests/test_config.py checks these equal the registries."""

ARCH_NAMES = ("densenet121", "inceptionv3", "resnet18", "tv_resnet18", "tv_resnet50", "vgg16bn")
METRIC_NAMES = ("fsim", "gmsd", "l2", "lpips", "mdsi", "ms_ssim", "ssim", "vsi")
