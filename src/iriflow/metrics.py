"""Perceptual distances D(x, y) -> Tensor[B] (0 for identical images, larger
for less similar), differentiable, on [0,1] images of any channel count.

One registry serves the IRI stage's adversarial losses and the simulated
observers, so an observer can be told to use a metric the IRIs were not
optimised against. Implementations come from piq (a maintained library);
every entry runs offline at 28 and 32 px (checked by the tests). LPIPS needs
pretrained weights that must be fetched once; without them it fails with a
message saying where torch looks for them."""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import types
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from .registry import Registry

Metric = Callable[[Tensor, Tensor], Tensor]
METRICS = Registry("perceptual metric")
# piq's modules of the full-reference metrics below; none needs torchvision
PIQ_MODULES = ("ssim", "ms_ssim", "gmsd", "mdsi", "fsim", "vsi")


def _load_piq(modules: tuple[str, ...] = PIQ_MODULES) -> types.SimpleNamespace:
    """piq's metric modules, without running piq's package ``__init__``.

    That ``__init__`` imports every piq metric and feature extractor, and
    with them torchvision, whose import pulls in torch._dynamo: about 2 s
    in every job process, for metrics that need only torch. So the modules
    are loaded under a bare stand-in for the package, which is removed
    again: a later ``import piq`` (LPIPS below, or a user's own) runs the
    real ``__init__`` and finds these same modules already loaded. Should
    piq's layout change, this falls back to the plain import."""
    if "piq" not in sys.modules:
        spec = importlib.util.find_spec("piq")
        stand_in = types.ModuleType("piq")
        stand_in.__path__ = list(spec.submodule_search_locations or [])
        sys.modules["piq"] = stand_in
        try:
            return types.SimpleNamespace(**{m: importlib.import_module(f"piq.{m}") for m in modules})
        except ImportError:
            pass
        finally:
            if sys.modules.get("piq") is stand_in:
                del sys.modules["piq"]
    importlib.import_module("piq")
    return types.SimpleNamespace(**{m: sys.modules[f"piq.{m}"] for m in modules})


_PIQ = _load_piq()


def _rgb(x: Tensor) -> Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _quiet(fn):
    """piq warns on every grayscale call that it copies channels; we know."""

    def wrapped(x: Tensor, y: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(x, y)

    wrapped.__doc__ = fn.__doc__
    return wrapped


@METRICS.register("ssim")
def ssim(x: Tensor, y: Tensor) -> Tensor:
    """1 - SSIM (7x7 Gaussian window, suits 28-32 px images)."""
    return 1 - _PIQ.ssim.ssim(x, y, data_range=1.0, reduction="none", kernel_size=7)


@METRICS.register("ms_ssim")
def ms_ssim(x: Tensor, y: Tensor) -> Tensor:
    """1 - MS-SSIM with as many scales as the image size allows (at most 5)."""
    size = min(x.shape[-2:])  # piq needs size > (kernel - 1) * 2 ** (scales - 1)
    scales = max(1, min(5, int(math.floor(math.log2((size - 1) / 4))) + 1))
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales], device=x.device)
    return 1 - _PIQ.ms_ssim.multi_scale_ssim(
        x, y, data_range=1.0, reduction="none", kernel_size=5, scale_weights=weights / weights.sum()
    )


@METRICS.register("gmsd")
def gmsd(x: Tensor, y: Tensor) -> Tensor:
    """Gradient magnitude similarity deviation."""
    return _PIQ.gmsd.gmsd(x, y, reduction="none", data_range=1.0)


@METRICS.register("mdsi")
@_quiet
def mdsi(x: Tensor, y: Tensor) -> Tensor:
    """Mean deviation similarity index (gradient and chromaticity)."""
    return _PIQ.mdsi.mdsi(_rgb(x), _rgb(y), reduction="none", data_range=1.0)


@METRICS.register("fsim")
def fsim(x: Tensor, y: Tensor) -> Tensor:
    """1 - FSIM (phase congruency and gradient; luminance only)."""
    return 1 - _PIQ.fsim.fsim(x, y, reduction="none", data_range=1.0, chromatic=False)


@METRICS.register("vsi")
@_quiet
def vsi(x: Tensor, y: Tensor) -> Tensor:
    """1 - visual saliency-induced index."""
    return 1 - _PIQ.vsi.vsi(_rgb(x), _rgb(y), reduction="none", data_range=1.0)


@METRICS.register("l2")
def l2(x: Tensor, y: Tensor) -> Tensor:
    """Root-mean-square pixel difference (a non-perceptual baseline)."""
    return (x - y).flatten(1).pow(2).mean(1).sqrt()


_LPIPS: dict[str, torch.nn.Module] = {}


@METRICS.register("lpips")
def lpips(x: Tensor, y: Tensor) -> Tensor:
    """LPIPS (VGG features); needs its pretrained weights in torch's hub cache."""
    if "vgg" not in _LPIPS:
        try:
            _LPIPS["vgg"] = importlib.import_module("piq").LPIPS(reduction="none").to(x.device).eval()
        except Exception as e:  # network errors differ by platform
            hub = os.path.join(torch.hub.get_dir(), "checkpoints")
            raise RuntimeError(
                "metric 'lpips' needs pretrained weights (VGG-16 and the LPIPS linear layers), "
                f"which could not be loaded ({type(e).__name__}: {e}). Download them once on a "
                f"machine with internet into {hub}, or choose an offline metric: "
                f"{sorted(k for k in METRICS if k != 'lpips')}"
            ) from e
    return _LPIPS["vgg"](_rgb(x), _rgb(y)).flatten()


def get_metric(name: str) -> Metric:
    return METRICS[name]
