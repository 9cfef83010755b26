"""Architectures: CIFAR-style backbones with a width multiplier, torchvision
ImageNet ResNets, and the ``Net`` wrapper (pixel-space normalisation + linear head).

Every backbone ends in a ReLU followed by global average pooling. The final ReLU
can be replaced by ``FakeReLU`` (ReLU forward, identity backward), which
representation inversion uses so that gradients reach dead units. Backbones are
split into named stages: ``layer_names()`` lists them plus ``"penultimate"`` (the
pooled features) and ``forward_layers`` returns any subset in one forward pass.

Registered constructors take ``(in_channels, width)`` and return a ``Backbone``.
Channel counts of the CIFAR-style nets are ``max(1, round(base * width))``.

Modules that apply a BatchNorm directly to a convolution's output name the
pairs in ``conv_bn`` (besides conv -> BN neighbours of an ``nn.Sequential``),
so that ``fold_batchnorm`` can fold them for inference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .catalog import PENULTIMATE
from .registry import Registry

ARCHS = Registry("architecture")

_Size = int | tuple[int, int]


class FakeReLU(torch.autograd.Function):
    """ReLU in the forward pass, identity in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def final_relu(x: Tensor, fake_relu: bool = False) -> Tensor:
    """The backbone's last activation: a ReLU, straight-through when ``fake_relu``."""
    return FakeReLU.apply(x) if fake_relu else F.relu(x)


def _ch(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def _he_init(module: nn.Module) -> None:
    """He (fan-in, forward-variance preserving) init for convolutions, unit/zero BatchNorm,
    zero conv biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Backbone(nn.Module):
    """A trunk split into named stages, ending in (fake-able) ReLU + global average pool.

    Subclasses set ``feature_dim`` and implement ``stages()``; the last stage returns
    the pre-activation of the final ReLU, which ``forward_layers`` applies so that
    the last stage's reported output is post-ReLU either way. Forward hooks on a
    stage module see the same tensors, except on the last stage (pre-activation).
    """

    feature_dim: int

    def stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        """(name, function) pairs in forward order."""
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        return [name for name, _ in self.stages()] + [PENULTIMATE]

    def forward_layers(self, x: Tensor, names: Iterable[str], fake_relu: bool = False) -> dict[str, Tensor]:
        """Activations of the requested stages ([B,C,H,W]) and/or ``"penultimate"``
        ([B, feature_dim]) from a single forward pass that stops after the last one needed."""
        wanted = set(names)
        unknown = wanted - set(self.layer_names())
        if unknown:
            raise KeyError(f"unknown layer(s) {sorted(unknown)}; available: {self.layer_names()}")
        stages = self.stages()
        out: dict[str, Tensor] = {}
        for i, (name, fn) in enumerate(stages):
            if wanted <= out.keys():
                break
            x = fn(x)
            if i == len(stages) - 1:
                x = final_relu(x, fake_relu)
            if name in wanted:
                out[name] = x
        if PENULTIMATE in wanted:
            out[PENULTIMATE] = x.mean(dim=(2, 3))
        return out

    def forward_features(self, x: Tensor, fake_relu: bool = False) -> Tensor:
        """Globally pooled penultimate features, [B, feature_dim]."""
        return self.forward_layers(x, (PENULTIMATE,), fake_relu)[PENULTIMATE]

    def forward(self, x: Tensor, fake_relu: bool = False) -> Tensor:
        return self.forward_features(x, fake_relu)


class _NamedStages(Backbone):
    """Backbone whose stages are its child modules listed in ``STAGES``."""

    STAGES: tuple[str, ...]

    def stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [(name, getattr(self, name)) for name in self.STAGES]


# --------------------------------------------------------------------------- ResNet-18


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (projection when the shape changes)."""

    conv_bn = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, cin: int, cout: int, stride: int, out_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.out_relu = out_relu

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out, inplace=True) if self.out_relu else out


@ARCHS.register("resnet18")
class ResNet18(_NamedStages):
    """CIFAR ResNet-18: 3x3 stem (no max-pool), BasicBlock stages [2, 2, 2, 2] of
    widths 64/128/256/512 (strides 1/2/2/2). feature_dim = round(512 * width)."""

    STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, in_channels: int = 3, width: float = 1.0, stem_stride: int = 1):
        super().__init__()
        widths = [_ch(c, width) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        cin = widths[0]
        for i, (cout, stride) in enumerate(zip(widths, (1, 2, 2, 2))):
            last_stage = i == 3
            layer = nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1, out_relu=not last_stage))
            setattr(self, f"layer{i + 1}", layer)
            cin = cout
        self.feature_dim = cin
        _he_init(self)


# --------------------------------------------------------------------------- VGG-16-BN

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


@ARCHS.register("vgg16bn")
class VGG16BN(_NamedStages):
    """CIFAR VGG-16 with BatchNorm: 13 conv3x3(+bias)-BN-ReLU layers in five blocks,
    each block closed by a 2x2 max-pool, then global average pooling (no FC stack).
    feature_dim = round(512 * width).

    The max-pools use ``ceil_mode=True``: 32 px goes 16/8/4/2/1 as usual, 28 px goes
    14/7/4/2/1 instead of collapsing to 0, and a 1 px map stays 1 px. In the last
    block the final ReLU is applied after the pool; ReLU and max-pool commute, so
    the values equal conv-BN-ReLU-pool.
    """

    STAGES = ("block1", "block2", "block3", "block4", "block5")

    def __init__(self, in_channels: int = 3, width: float = 1.0, stem_stride: int = 1):
        super().__init__()
        cin = in_channels
        for i, block in enumerate(VGG16_BLOCKS):
            layers: list[nn.Module] = []
            for j, base in enumerate(block):
                cout = _ch(base, width)
                stride = stem_stride if i == j == 0 else 1
                layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)]
                if not (i == len(VGG16_BLOCKS) - 1 and j == len(block) - 1):
                    layers.append(nn.ReLU(inplace=True))
                cin = cout
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            setattr(self, f"block{i + 1}", nn.Sequential(*layers))
        self.feature_dim = cin
        _he_init(self)


# --------------------------------------------------------------------------- DenseNet-121


class DenseLayer(nn.Module):
    """Bottleneck layer BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); output concatenated to the input."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x), inplace=True))
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) followed by 2x2 average pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)
        )


@ARCHS.register("densenet121")
class DenseNet121(_NamedStages):
    """CIFAR DenseNet-121 (DenseNet-BC): 3x3 stem with 2k channels, dense blocks of
    [6, 12, 24, 16] bottleneck layers, growth k = round(32 * width), compression 0.5.
    Stage ``blockN`` is dense block N followed by its transition (N < 4) or by the
    final BN-ReLU (N = 4). feature_dim = 1024 * width when 32 * width is whole.
    """

    STAGES = ("stem", "block1", "block2", "block3", "block4")
    BLOCKS = (6, 12, 24, 16)

    def __init__(self, in_channels: int = 3, width: float = 1.0, stem_stride: int = 1):
        super().__init__()
        growth = _ch(32, width)
        cin = 2 * growth
        self.stem = nn.Conv2d(in_channels, cin, 3, stem_stride, 1, bias=False)
        for i, n_layers in enumerate(self.BLOCKS):
            layers: list[nn.Module] = []
            for _ in range(n_layers):
                layers.append(DenseLayer(cin, growth))
                cin += growth
            if i < len(self.BLOCKS) - 1:
                layers.append(Transition(cin, cin // 2))
                cin //= 2
            else:
                layers.append(nn.BatchNorm2d(cin))
            setattr(self, f"block{i + 1}", nn.Sequential(*layers))
        self.feature_dim = cin
        _he_init(self)


# --------------------------------------------------------------------------- Inception-v3


class ConvBN(nn.Module):
    """Conv (no bias) + BN (eps 1e-3) + optional ReLU: Inception-v3's basic unit."""

    conv_bn = (("conv", "bn"),)

    def __init__(self, cin: int, cout: int, kernel: _Size, stride: int = 1, padding: _Size = 0, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.act else x


def _conv_chain(cin: int, spec: Sequence[tuple[int, _Size, int, _Size]]) -> nn.Sequential:
    """ConvBN units given as (out_channels, kernel, stride, padding)."""
    layers = []
    for cout, kernel, stride, padding in spec:
        layers.append(ConvBN(cin, cout, kernel, stride, padding))
        cin = cout
    return nn.Sequential(*layers)


class InceptionA(nn.Module):
    """Fig. 5 module: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (torchvision InceptionA)."""

    def __init__(self, cin: int, pool_features: int, width: float):
        super().__init__()
        c48, c64, c96 = _ch(48, width), _ch(64, width), _ch(96, width)
        self.branch1x1 = ConvBN(cin, c64, 1)
        self.branch5x5 = _conv_chain(cin, [(c48, 1, 1, 0), (c64, 5, 1, 2)])
        self.branch3x3dbl = _conv_chain(cin, [(c64, 1, 1, 0), (c96, 3, 1, 1), (c96, 3, 1, 1)])
        self.branch_pool = ConvBN(cin, pool_features, 1)
        self.out_channels = 2 * c64 + c96 + pool_features

    def forward(self, x: Tensor) -> Tensor:
        pool = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), pool], 1)


class ReductionA(nn.Module):
    """Grid reduction 35->17 in ImageNet terms: stride-2 3x3 | 1x1-3x3-3x3/2 | maxpool/2
    (torchvision InceptionB)."""

    def __init__(self, cin: int, width: float):
        super().__init__()
        c64, c96, c384 = _ch(64, width), _ch(96, width), _ch(384, width)
        self.branch3x3 = ConvBN(cin, c384, 3, 2)
        self.branch3x3dbl = _conv_chain(cin, [(c64, 1, 1, 0), (c96, 3, 1, 1), (c96, 3, 2, 0)])
        self.out_channels = c384 + c96 + cin

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionB(nn.Module):
    """Fig. 6 module with 7x7 factorised into 1x7/7x1 (torchvision InceptionC)."""

    def __init__(self, cin: int, c7: int, width: float):
        super().__init__()
        c192 = _ch(192, width)
        row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
        self.branch1x1 = ConvBN(cin, c192, 1)
        self.branch7x7 = _conv_chain(cin, [(c7, 1, 1, 0), (c7, *row), (c192, *col)])
        self.branch7x7dbl = _conv_chain(cin, [(c7, 1, 1, 0), (c7, *col), (c7, *row), (c7, *col), (c192, *row)])
        self.branch_pool = ConvBN(cin, c192, 1)
        self.out_channels = 4 * c192

    def forward(self, x: Tensor) -> Tensor:
        pool = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch7x7dbl(x), pool], 1)


class ReductionB(nn.Module):
    """Grid reduction 17->8 in ImageNet terms: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2
    (torchvision InceptionD)."""

    def __init__(self, cin: int, width: float):
        super().__init__()
        c192, c320 = _ch(192, width), _ch(320, width)
        self.branch3x3 = _conv_chain(cin, [(c192, 1, 1, 0), (c320, 3, 2, 0)])
        self.branch7x7x3 = _conv_chain(
            cin, [(c192, 1, 1, 0), (c192, (1, 7), 1, (0, 3)), (c192, (7, 1), 1, (3, 0)), (c192, 3, 2, 0)]
        )
        self.out_channels = c320 + c192 + cin

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch7x7x3(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """Fig. 7 module with expanded 1x3/3x1 filter banks (torchvision InceptionE).
    With ``final=True`` its output units skip their ReLU (the backbone applies it)."""

    def __init__(self, cin: int, width: float, final: bool = False):
        super().__init__()
        c192, c320, c384, c448 = (_ch(c, width) for c in (192, 320, 384, 448))
        act = not final
        self.branch1x1 = ConvBN(cin, c320, 1, act=act)
        self.branch3x3_1 = ConvBN(cin, c384, 1)
        self.branch3x3_2a = ConvBN(c384, c384, (1, 3), 1, (0, 1), act=act)
        self.branch3x3_2b = ConvBN(c384, c384, (3, 1), 1, (1, 0), act=act)
        self.branch3x3dbl_1 = _conv_chain(cin, [(c448, 1, 1, 0), (c384, 3, 1, 1)])
        self.branch3x3dbl_2a = ConvBN(c384, c384, (1, 3), 1, (0, 1), act=act)
        self.branch3x3dbl_2b = ConvBN(c384, c384, (3, 1), 1, (1, 0), act=act)
        self.branch_pool = ConvBN(cin, c192, 1, act=act)
        self.out_channels = c320 + 4 * c384 + c192

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_1(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_2a(b),
                self.branch3x3dbl_2b(b),
                self.branch_pool(F.avg_pool2d(x, 3, 1, 1)),
            ],
            1,
        )


@ARCHS.register("inceptionv3")
class InceptionV3(_NamedStages):
    """CIFAR Inception-v3. The mixed blocks are those of Szegedy et al. (2016) /
    torchvision: ``mixed5`` = 3 x InceptionA (pool features 32/64/64), ``mixed6`` =
    ReductionA + 4 x InceptionB (c7 128/160/160/192), ``mixed7`` = ReductionB +
    2 x InceptionC; feature_dim = 2048 * width when the widths are whole.

    Changes from the ImageNet model: the stem keeps its five conv units
    (32-32-64-80(1x1)-192) but all are stride 1 with 'same' padding and both stem
    max-pools are removed, so the mixed5 blocks see the full 32x32 (or 28x28) grid
    and the two reductions take it to 15x15 and 7x7 (13 and 6 for 28 px); no
    auxiliary classifier, no dropout before the head, no ``transform_input``; He init.
    """

    STAGES = ("stem", "mixed5", "mixed6", "mixed7")

    def __init__(self, in_channels: int = 3, width: float = 1.0, stem_stride: int = 1):
        super().__init__()
        c32, c64, c80, c192 = (_ch(c, width) for c in (32, 64, 80, 192))
        self.stem = _conv_chain(
            in_channels, [(c32, 3, stem_stride, 1), (c32, 3, 1, 1), (c64, 3, 1, 1), (c80, 1, 1, 0), (c192, 3, 1, 1)]
        )
        blocks: list[nn.Module] = []
        cin = c192
        for pool_features in (c32, c64, c64):
            blocks.append(InceptionA(cin, pool_features, width))
            cin = blocks[-1].out_channels
        self.mixed5 = nn.Sequential(*blocks)
        blocks = [ReductionA(cin, width)]
        cin = blocks[-1].out_channels
        for c7 in (_ch(128, width), _ch(160, width), _ch(160, width), c192):
            blocks.append(InceptionB(cin, c7, width))
            cin = blocks[-1].out_channels
        self.mixed6 = nn.Sequential(*blocks)
        blocks = [ReductionB(cin, width)]
        blocks.append(InceptionC(blocks[-1].out_channels, width))
        blocks.append(InceptionC(blocks[-1].out_channels, width, final=True))
        self.mixed7 = nn.Sequential(*blocks)
        self.feature_dim = blocks[-1].out_channels
        _he_init(self)


# --------------------------------------------------------------------------- torchvision


class TorchvisionResNet(Backbone):
    """A torchvision ImageNet ResNet (random init) as a backbone: 7x7/2 stem + max-pool,
    no ``avgpool``/``fc`` (the ``Net`` head replaces ``fc``). The modules keep their
    torchvision names, so a torchvision state_dict loads as ``backbone.<key>`` with
    ``fc.*`` renamed to ``head.*``.
    """

    TORCHVISION_MODULES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    conv_bn = (("conv1", "bn1"),)

    def __init__(self, name: str, in_channels: int):
        # imported here, not with the module: torchvision's import (with torch._dynamo) costs
        # about 2 s of every job process, and only these backbones need it
        from torchvision.models import resnet

        super().__init__()
        net = getattr(resnet, name)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 7, 2, 3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        for module in self.TORCHVISION_MODULES:
            setattr(self, module, getattr(net, module))
        self.feature_dim = net.fc.in_features
        self.bottleneck = isinstance(net.layer4[-1], resnet.Bottleneck)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:  # torchvision's blocks: conv1 -> bn1, conv2 -> bn2 (, conv3 -> bn3)
                block.conv_bn = tuple((f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(block, f"conv{i}"))

    def stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [
            ("stem", self._stem),
            ("layer1", self.layer1),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self._layer4_preact),
        ]

    def _stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def _layer4_preact(self, x: Tensor) -> Tensor:
        """layer4 with its last block's output ReLU left to ``final_relu``."""
        *body, last = self.layer4
        for block in body:
            x = block(x)
        identity = x if last.downsample is None else last.downsample(x)
        out = last.relu(last.bn1(last.conv1(x)))
        out = last.bn2(last.conv2(out))
        if self.bottleneck:
            out = last.bn3(last.conv3(last.relu(out)))
        return out + identity


@ARCHS.register("tv_resnet18")
def tv_resnet18(in_channels: int = 3, width: float = 1.0, stem_stride: int = 1) -> Backbone:
    """torchvision ResNet-18 for ImageNet-like resolution; ``width`` and ``stem_stride`` are ignored."""
    return TorchvisionResNet("resnet18", in_channels)


@ARCHS.register("tv_resnet50")
def tv_resnet50(in_channels: int = 3, width: float = 1.0, stem_stride: int = 1) -> Backbone:
    """torchvision ResNet-50 for ImageNet-like resolution; ``width`` and ``stem_stride`` are ignored."""
    return TorchvisionResNet("resnet50", in_channels)


# --------------------------------------------------------------------------- inference


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode in which every BatchNorm that directly
    follows a convolution (``conv_bn`` pairs and conv -> BN neighbours in an
    ``nn.Sequential``) is folded into that convolution's weights and bias and
    replaced by an identity. The function it computes is the same (up to float
    rounding), with one layer fewer per pair in the forward and the backward
    pass; ``model`` itself is left as it was. BatchNorms elsewhere (e.g.
    DenseNet's, which come before their convolutions) stay."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        pairs = list(getattr(module, "conv_bn", ()))
        if isinstance(module, nn.Sequential):
            kids = list(module.named_children())
            pairs += [
                (a, b)
                for (a, ma), (b, mb) in zip(kids, kids[1:])
                if isinstance(ma, nn.Conv2d) and isinstance(mb, nn.BatchNorm2d)
            ]
        for conv, bn in pairs:
            module.register_module(conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
            module.register_module(bn, nn.Identity())
    return folded


# --------------------------------------------------------------------------- wrapper


class Net(nn.Module):
    """Backbone + linear head on [0, 1] pixel inputs, normalised internally with
    per-channel ``mean``/``std`` buffers. ``spec`` holds the constructor kwargs, so
    ``build_model(**net.spec)`` + ``load_state_dict`` rebuilds a checkpoint."""

    def __init__(
        self,
        arch: str,
        num_classes: int,
        in_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: float = 1.0,
        stem_stride: int = 1,
    ):
        super().__init__()
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(
                f"mean/std need {in_channels} values (one per input channel), got {len(mean)} and {len(std)}"
            )
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.spec = {
            "arch": arch,
            "num_classes": int(num_classes),
            "in_channels": int(in_channels),
            "mean": mean,
            "std": std,
            "width": float(width),
            "stem_stride": int(stem_stride),
        }
        self.backbone: Backbone = ARCHS[arch](
            in_channels=int(in_channels), width=float(width), stem_stride=int(stem_stride)
        )
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.head = nn.Linear(self.backbone.feature_dim, int(num_classes))

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """Logits, [B, num_classes]."""
        return self.head(self.features(x))

    def features(self, x: Tensor, fake_relu: bool = False) -> Tensor:
        """Penultimate features, [B, feature_dim]."""
        return self.backbone.forward_features(self.normalize(x), fake_relu)

    def layers(self, x: Tensor, names: Iterable[str], fake_relu: bool = False) -> dict[str, Tensor]:
        """Named activations (see ``Backbone.forward_layers``)."""
        return self.backbone.forward_layers(self.normalize(x), names, fake_relu)


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    width: float = 1.0,
    stem_stride: int = 1,
) -> Net:
    """A freshly initialised ``Net`` (deterministic under ``torch.manual_seed``).
    ``stem_stride`` 2 halves the resolution at the first convolution of the
    CIFAR-style architectures (about 4x cheaper; for CPU-sized runs)."""
    return Net(arch, num_classes, in_channels, mean, std, width, stem_stride)
