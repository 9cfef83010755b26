"""Augmentations as batched tensor ops on [0,1] images (no per-image Python
loops), drawn from an explicit torch.Generator so training is reproducible
and resumable. Geometry (crop, flip, rotation, resized crop) is one affine
grid_sample per batch; colour ops are per-sample factors and are no-ops on
grayscale images where they need colour.

An 'adversarial' augmentation is its base augmentation plus an attack
setting; the objective applies the attack, because only it knows the loss
the attack maximises."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry

AUGMENTATIONS = Registry("augmentation")
_GRAY = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _bernoulli(n: int, p: float, gen: torch.Generator, device) -> Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def affine_resample(x: Tensor, theta: Tensor) -> Tensor:
    """Resample each image through its 2x3 affine map (bilinear, zero fill)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    return (x * _GRAY.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _view(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def colour_jitter(
    x: Tensor, strength: tuple[float, float, float, float], gen: torch.Generator, apply: Tensor | None = None
) -> Tensor:
    """Brightness, contrast, saturation factors in [1-s, 1+s] and a hue
    rotation in [-h, h] turns (YIQ), per sample; only rows where ``apply``."""
    b, c, s, h = strength
    n, dev = x.shape[0], x.device
    apply = torch.ones(n, dtype=torch.bool, device=dev) if apply is None else apply
    keep = lambda v: torch.where(apply, v, torch.ones_like(v))  # noqa: E731
    out = x * _view(keep(_uniform(n, max(0.0, 1 - b), 1 + b, gen, dev)))
    mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * _view(keep(_uniform(n, max(0.0, 1 - c), 1 + c, gen, dev))) + mean
    if x.shape[1] == 3:
        gray = _gray(out)
        out = (out - gray) * _view(keep(_uniform(n, max(0.0, 1 - s), 1 + s, gen, dev))) + gray
        angle = 2 * math.pi * torch.where(apply, _uniform(n, -h, h, gen, dev), torch.zeros(n, device=dev))
        out = _rotate_hue(out, angle)
    return out.clamp(0, 1)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype, device=x.device
    )
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    rot = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mat = from_yiq @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", mat, x)


def gaussian_blur(x: Tensor, sigma: Tensor, apply: Tensor) -> Tensor:
    """Per-sample separable Gaussian blur (kernel about a tenth of the image)."""
    n, c, h, w = x.shape
    k = max(3, (min(h, w) // 10) | 1)
    r = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    kern = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kern = kern / kern.sum(1, keepdim=True)
    kern = kern.repeat_interleave(c, 0)  # [B*C, k]
    flat = x.reshape(1, n * c, h, w)
    out = F.conv2d(F.pad(flat, (k // 2, k // 2, 0, 0), mode="reflect"), kern[:, None, None, :], groups=n * c)
    out = F.conv2d(F.pad(out, (0, 0, k // 2, k // 2), mode="reflect"), kern[:, None, :, None], groups=n * c)
    return torch.where(_view(apply), out.reshape(n, c, h, w), x)


class Augmentation:
    attack: Mapping[str, Any] | None = None

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        raise NotImplementedError


@AUGMENTATIONS.register("none")
class NoAugmentation(Augmentation):
    def __init__(self, kind: str = "none"):
        pass

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return x


@AUGMENTATIONS.register("standard")
class Standard(Augmentation):
    """Random crop with zero padding, horizontal flip, colour jitter and a
    small rotation, in one affine resampling plus per-sample colour factors."""

    def __init__(
        self, kind: str = "standard", crop_pad: int = 4, flip: bool = True, jitter: float = 0.25, rotation: float = 2.0
    ):
        self.pad, self.flip, self.jitter, self.rotation = crop_pad, flip, jitter, rotation

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        dev = x.device
        ang = math.radians(self.rotation) * _uniform(n, -1, 1, gen, dev)
        shift = torch.randint(-self.pad, self.pad + 1, (n, 2), generator=gen, device=dev).to(x.dtype)
        flip = torch.where(_bernoulli(n, 0.5 if self.flip else 0.0, gen, dev), -1.0, 1.0).to(x.dtype)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, 2 * shift[:, 0] / w], 1),
                torch.stack([sin * flip, cos, 2 * shift[:, 1] / h], 1),
            ],
            1,
        )
        out = affine_resample(x, theta)
        if self.jitter > 0:
            out = colour_jitter(out, (self.jitter, self.jitter, self.jitter, 0.0), gen)
        return out


@AUGMENTATIONS.register("simclr_views")
class SimCLRViews(Augmentation):
    """SimCLR's view distribution: random resized crop, flip, colour jitter
    (with probability), random grayscale and Gaussian blur; color=False drops
    the colour operations (the 'nocolor' variant)."""

    def __init__(
        self,
        kind: str = "simclr_views",
        crop_scale=(0.08, 1.0),
        flip: bool = True,
        color: bool = True,
        jitter=(0.8, 0.8, 0.8, 0.2),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
    ):
        self.scale, self.flip, self.color = tuple(crop_scale), flip, color
        self.jitter, self.jitter_p, self.gray_p, self.blur_p = tuple(jitter), jitter_p, grayscale_p, blur_p

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, dev = x.shape[0], x.device
        area = _uniform(n, *self.scale, gen, dev)
        log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, dev)
        sw = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
        sh = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
        cx = _uniform(n, -1, 1, gen, dev) * (1 - sw)
        cy = _uniform(n, -1, 1, gen, dev) * (1 - sh)
        flip = torch.where(_bernoulli(n, 0.5 if self.flip else 0.0, gen, dev), -1.0, 1.0)
        zero = torch.zeros(n, device=dev)
        theta = torch.stack([torch.stack([sw * flip, zero, cx], 1), torch.stack([zero, sh, cy], 1)], 1).to(x.dtype)
        out = affine_resample(x, theta)
        if self.color:
            out = colour_jitter(out, self.jitter, gen, apply=_bernoulli(n, self.jitter_p, gen, dev))
            gray = _bernoulli(n, self.gray_p, gen, dev)
            if out.shape[1] == 3:
                out = torch.where(_view(gray), _gray(out).expand_as(out), out)
        sigma = _uniform(n, 0.1, 2.0, gen, dev)
        return gaussian_blur(out, sigma, _bernoulli(n, self.blur_p, gen, dev)).clamp(0, 1)


@AUGMENTATIONS.register("adversarial")
class Adversarial(Augmentation):
    """A base augmentation followed by an Lp-ball attack chosen by the objective."""

    def __init__(self, base: Augmentation, attack: Mapping[str, Any]):
        self.base, self.attack = base, dict(attack)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return self.base(x, gen)


def build_augmentation(name: str, definitions: Mapping[str, Mapping[str, Any]]) -> Augmentation:
    """The augmentation variant ``name`` from models.augmentations."""
    if name not in definitions:
        raise KeyError(f"augmentation {name!r} is not defined; defined: {sorted(definitions)}")
    spec = dict(definitions[name])
    kind = spec.pop("kind")
    if kind == "adversarial":
        return Adversarial(build_augmentation(spec.get("base", "standard"), definitions), spec["attack"])
    return AUGMENTATIONS[kind](**spec)
