"""Architectures: registry, shapes and geometry, width scaling, parameter counts
against the reference implementations, internal normalisation, FakeReLU gradients,
named layers, state_dict round-trips, determinism, channels_last and BatchNorm
folding."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision

from iriflow.archs import ARCHS, PENULTIMATE, ConvBN, Net, build_model, fold_batchnorm

ALL = ["resnet18", "vgg16bn", "densenet121", "inceptionv3", "tv_resnet18", "tv_resnet50"]
CIFAR = ALL[:4]
W = 0.125
NUM_CLASSES = 7
INPUTS = {1: dict(mean=[0.13], std=[0.31], size=28), 3: dict(mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26], size=32)}
FEATURE_DIM = {
    "resnet18": 512 * W,
    "vgg16bn": 512 * W,
    "densenet121": 1024 * W,
    "inceptionv3": 2048 * W,
    "tv_resnet18": 512,
    "tv_resnet50": 2048,
}
# Spatial size of each stage output (penultimate excluded) for 28 px and 32 px inputs.
SPATIAL = {
    "resnet18": {28: [28, 28, 14, 7, 4], 32: [32, 32, 16, 8, 4]},
    "vgg16bn": {28: [14, 7, 4, 2, 1], 32: [16, 8, 4, 2, 1]},
    "densenet121": {28: [28, 14, 7, 3, 3], 32: [32, 16, 8, 4, 4]},
    "inceptionv3": {28: [28, 28, 13, 6], 32: [32, 32, 15, 7]},
    "tv_resnet18": {28: [7, 7, 4, 2, 1], 32: [8, 8, 4, 2, 1]},
    "tv_resnet50": {28: [7, 7, 4, 2, 1], 32: [8, 8, 4, 2, 1]},
}


def make(arch: str, in_channels: int = 3, width: float = W, seed: int = 0, num_classes: int = NUM_CLASSES) -> Net:
    torch.manual_seed(seed)
    spec = INPUTS[in_channels]
    return build_model(arch, num_classes, in_channels, spec["mean"], spec["std"], width).eval()


def images(in_channels: int = 3, batch: int = 2, size: int | None = None, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = size or INPUTS[in_channels]["size"]
    return torch.rand(batch, in_channels, size, size, generator=g)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nets() -> dict[tuple[str, int], Net]:
    """Read-only eval-mode nets, built once per (arch, in_channels)."""
    return {}


def cached(nets: dict, arch: str, in_channels: int = 3) -> Net:
    if (arch, in_channels) not in nets:
        nets[arch, in_channels] = make(arch, in_channels)
    return nets[arch, in_channels]


def test_registry_holds_exactly_the_architectures():
    assert sorted(ARCHS) == sorted(ALL)
    with pytest.raises(KeyError) as err:
        build_model("resnet19", 10, 3, [0.5] * 3, [0.5] * 3)
    for name in ALL:
        assert name in str(err.value)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("arch", ALL)
def test_shapes_geometry_and_batch_independence(nets, arch, in_channels):
    net = cached(nets, arch, in_channels)
    size = INPUTS[in_channels]["size"]
    x = images(in_channels, batch=3)
    with torch.no_grad():
        logits = net(x)
        feats = net.features(x)
        acts = net.layers(x, net.backbone.layer_names())
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert net.feature_dim == FEATURE_DIM[arch]
    assert logits.shape == (3, NUM_CLASSES) and feats.shape == (3, net.feature_dim)
    assert list(acts) == net.backbone.layer_names()
    stages = [n for n in acts if n != PENULTIMATE]
    assert [acts[n].shape[-1] for n in stages] == SPATIAL[arch][size]
    assert all(acts[n].shape[:2] == (3, acts[n].shape[1]) and acts[n].shape[-2] == acts[n].shape[-1] for n in stages)
    last = acts[stages[-1]]
    assert last.shape[1] == net.feature_dim and (last >= 0).all()
    torch.testing.assert_close(acts[PENULTIMATE], last.mean(dim=(2, 3)), rtol=0, atol=0)
    torch.testing.assert_close(acts[PENULTIMATE], feats, rtol=0, atol=0)
    torch.testing.assert_close(net.head(feats), logits, rtol=0, atol=0)
    torch.testing.assert_close(single, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ALL)
def test_inputs_down_to_16px(nets, arch):
    with torch.no_grad():
        out = cached(nets, arch).layers(images(3, size=16), {"penultimate"})
    assert out[PENULTIMATE].shape == (2, FEATURE_DIM[arch]) and out[PENULTIMATE].isfinite().all()


@pytest.mark.parametrize("arch", ALL)
def test_forward_layers_single_requests_match_full_pass(nets, arch):
    net = cached(nets, arch)
    x = images()
    names = net.backbone.layer_names()
    with torch.no_grad():
        full = net.layers(x, names)
        for name in names:
            one = net.layers(x, {name})
            assert list(one) == [name]
            torch.testing.assert_close(one[name], full[name], rtol=0, atol=0)
        assert net.layers(x, set()) == {}
    with pytest.raises(KeyError, match="layer9"):
        net.layers(x, {"layer9"})


@pytest.mark.parametrize("arch", CIFAR)
def test_forward_layers_stops_after_last_requested_stage(nets, arch):
    net = cached(nets, arch)
    names = net.backbone.layer_names()
    calls = []
    hook = getattr(net.backbone, names[-2]).register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            net.layers(images(), {names[0]})
            assert calls == []
            net.layers(images(), {PENULTIMATE})
            assert calls == [1]
    finally:
        hook.remove()


@pytest.mark.parametrize("arch", CIFAR)
def test_width_scales_channels_and_parameters(arch):
    small, medium, large = (make(arch, 1, w) for w in (0.125, 0.25, 0.5))
    assert n_params(small) < n_params(medium) < n_params(large)
    assert large.feature_dim == 2 * medium.feature_dim == 4 * small.feature_dim
    assert 3.5 < n_params(large) / n_params(medium) < 4.1  # conv weights scale with width^2


@pytest.mark.parametrize("arch", ["tv_resnet18", "tv_resnet50"])
def test_torchvision_models_ignore_width(arch):
    a, b = make(arch, 1, 0.25), make(arch, 1, 2.0)
    assert a.feature_dim == b.feature_dim == FEATURE_DIM[arch]
    assert n_params(a) == n_params(b)
    assert a.backbone.conv1.in_channels == 1


@pytest.mark.parametrize("arch", ["tv_resnet18", "tv_resnet50"])
def test_torchvision_state_dict_loads_and_matches_torchvision_forward(arch):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, arch[3:])(weights=None, num_classes=NUM_CLASSES)
    with torch.no_grad():
        ref(images(batch=4, size=64, seed=7))  # train mode: move the BatchNorm statistics
    ref.eval()
    net = make(arch)
    state = {f"head.{k[3:]}" if k.startswith("fc.") else f"backbone.{k}": v for k, v in ref.state_dict().items()}
    net.load_state_dict({**state, "mean": net.mean, "std": net.std})
    x = images(size=64)
    with torch.no_grad():
        assert_close_to_scale(net(x), ref(net.normalize(x)))


@pytest.mark.parametrize(
    "arch, expected",
    [
        ("resnet18", 11_173_962),  # the usual CIFAR ResNet-18, 10 classes
        ("vgg16bn", 14_728_266),  # the usual CIFAR VGG-16-BN, 10 classes
        ("densenet121", 6_956_298),  # the usual CIFAR DenseNet-121, 10 classes
        ("tv_resnet18", 11_689_512),  # torchvision resnet18, 1000 classes
        ("tv_resnet50", 25_557_032),  # torchvision resnet50, 1000 classes
    ],
)
def test_full_width_parameter_counts_match_references(arch, expected):
    net = make(arch, 3, 1.0, num_classes=1000 if arch.startswith("tv_") else 10)
    assert n_params(net) == expected


def test_inception_trunk_has_torchvision_inception_v3_parameters():
    ref = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    net = make("inceptionv3", 3, 1.0)
    assert net.feature_dim == ref.fc.in_features == 2048
    assert n_params(net.backbone) == n_params(ref) - n_params(ref.fc)


@pytest.mark.parametrize("arch", ALL)
def test_normalisation_happens_inside(nets, arch):
    net = cached(nets, arch)
    x = images()
    m = torch.tensor(INPUTS[3]["mean"]).view(1, 3, 1, 1)
    s = torch.tensor(INPUTS[3]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net.head(net.backbone.forward_features((x - m) / s))
        unnormalised = net.head(net.backbone.forward_features(x))
        got = net(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert not torch.allclose(got, unnormalised, atol=1e-3)
    assert net.mean.tolist() == pytest.approx(INPUTS[3]["mean"])
    assert net.std.tolist() == pytest.approx(INPUTS[3]["std"])


def test_bad_normalisation_is_rejected():
    with pytest.raises(ValueError, match="one per input channel"):
        build_model("resnet18", 10, 3, [0.5], [0.5], W)
    with pytest.raises(ValueError, match="positive"):
        build_model("resnet18", 10, 1, [0.5], [0.0], W)


def preactivation(net: Net, x: torch.Tensor) -> torch.Tensor:
    """Input of the final ReLU, by running the stages by hand."""
    z = net.normalize(x)
    for _, fn in net.backbone.stages():
        z = fn(z)
    return z


def input_grad(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(value.sum(), x)[0]


@pytest.mark.parametrize("arch", ALL)
def test_fake_relu_same_forward_straight_through_backward(nets, arch):
    net = cached(nets, arch)
    x = images().requires_grad_(True)
    pre = preactivation(net, x)
    assert (pre < 0).any() and (pre > 0).any()
    plain, fake = net.features(x), net.features(x, fake_relu=True)
    torch.testing.assert_close(fake, plain, rtol=0, atol=0)
    torch.testing.assert_close(plain, F.relu(pre).mean(dim=(2, 3)), rtol=1e-6, atol=1e-6)
    g_plain, g_fake = input_grad(plain, x), input_grad(fake, x)
    g_pre = input_grad(pre.mean(dim=(2, 3)), x)
    torch.testing.assert_close(g_fake, g_pre, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(g_fake, g_plain, rtol=1e-3, atol=1e-6)
    layers = net.layers(x, {"penultimate"}, fake_relu=True)
    torch.testing.assert_close(input_grad(layers[PENULTIMATE], x), g_fake, rtol=0, atol=0)


def final_norms(net: Net, arch: str) -> list[torch.nn.BatchNorm2d]:
    """The BatchNorms whose outputs (plus a shortcut) feed the final ReLU."""
    bb = net.backbone
    if arch == "resnet18":
        return [bb.layer4[-1].bn2]
    if arch == "vgg16bn":
        return [bb.block5[-2]]
    if arch == "densenet121":
        return [bb.block4[-1]]
    if arch == "inceptionv3":
        return [m.bn for m in bb.mixed7[-1].modules() if isinstance(m, ConvBN) and not m.act]
    last = bb.layer4[-1]
    return [last.bn3 if arch == "tv_resnet50" else last.bn2]


@pytest.mark.parametrize("arch", ALL)
def test_fake_relu_reaches_input_when_every_final_unit_is_dead(arch):
    net = make(arch)
    with torch.no_grad():
        for bn in final_norms(net, arch):
            bn.bias.fill_(-1e4)
    x = images().requires_grad_(True)
    plain, fake = net.features(x), net.features(x, fake_relu=True)
    assert torch.equal(plain, torch.zeros_like(plain)) and torch.equal(fake, plain)
    assert torch.equal(input_grad(plain, x), torch.zeros_like(x))
    g_fake = input_grad(fake, x)
    assert (g_fake != 0).float().mean() > 0.5
    torch.testing.assert_close(g_fake, input_grad(preactivation(net, x).mean(dim=(2, 3)), x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ALL)
def test_state_dict_round_trip_via_spec(arch):
    net = make(arch, 1, seed=0)
    net.train()
    with torch.no_grad():
        net(images(1, batch=4, seed=5))  # move the BatchNorm running statistics
    net.eval()
    x = images(1)
    spec = json.loads(json.dumps(net.spec))
    assert spec == {
        "arch": arch,
        "num_classes": NUM_CLASSES,
        "in_channels": 1,
        "mean": INPUTS[1]["mean"],
        "std": INPUTS[1]["std"],
        "width": W,
        "stem_stride": 1,
    }
    torch.manual_seed(123)
    rebuilt = build_model(**spec).eval()
    with torch.no_grad():
        assert not torch.allclose(rebuilt(x), net(x))
        rebuilt.load_state_dict(net.state_dict())
        torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("arch", CIFAR)
def test_stem_stride_halves_the_first_stage_and_keeps_the_parameters(arch):
    torch.manual_seed(0)
    plain = build_model(arch, NUM_CLASSES, 1, INPUTS[1]["mean"], INPUTS[1]["std"], W).eval()
    strided = build_model(arch, NUM_CLASSES, 1, INPUTS[1]["mean"], INPUTS[1]["std"], W, stem_stride=2).eval()
    assert n_params(plain) == n_params(strided) and strided.spec["stem_stride"] == 2
    first = plain.backbone.layer_names()[0]
    x = images(1)
    with torch.no_grad():
        a = plain.layers(x, [first])[first]
        b = strided.layers(x, [first])[first]
        assert strided(x).shape == (2, NUM_CLASSES)
    assert b.shape[-1] == -(-a.shape[-1] // 2)


@pytest.mark.parametrize("arch", CIFAR + ["tv_resnet18"])
def test_init_is_deterministic_given_seed(arch):
    a, b, c = make(arch, seed=3), make(arch, seed=3), make(arch, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def assert_close_to_scale(got: torch.Tensor, ref: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal up to float32 summation-order noise relative to the tensor's magnitude."""
    torch.testing.assert_close(got, ref, rtol=100 * tol, atol=tol * ref.abs().max().item())


@pytest.mark.parametrize("arch", ALL)
def test_channels_last_matches_contiguous(nets, arch):
    net = cached(nets, arch)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = images(batch=2)
    x_cl = x.clone().to(memory_format=torch.channels_last).requires_grad_(True)
    x = x.requires_grad_(True)
    ref, got = net.features(x, fake_relu=True), net_cl.features(x_cl, fake_relu=True)
    assert_close_to_scale(got, ref)
    assert_close_to_scale(net_cl.head(got), net.head(ref))
    assert_close_to_scale(input_grad(got, x_cl), input_grad(ref, x))
    net_cl.train()
    net_cl(x_cl.detach()).logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in net_cl.parameters())


def n_batchnorms(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("arch", ALL)
def test_fold_batchnorm_computes_the_same_and_leaves_the_model(arch):
    net = make(arch)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # statistics and affine maps far from the identity, so that folding shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net)
    # every BatchNorm sits right after a convolution except DenseNet's (BN-ReLU-conv), which stay
    assert n_batchnorms(folded) == (n_batchnorms(net) if arch == "densenet121" else 0)
    assert n_batchnorms(net) > 0 and net.training and not folded.training
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    net.eval()
    x = images(batch=2).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    ref, got = net.features(x, fake_relu=True), folded.features(x2, fake_relu=True)
    assert_close_to_scale(got, ref)
    assert_close_to_scale(folded.head(got), net.head(ref))
    assert_close_to_scale(input_grad(got, x2), input_grad(ref, x))
    stage = net.backbone.layer_names()[1]
    assert_close_to_scale(folded.layers(x2, [stage])[stage], net.layers(x, [stage])[stage])
