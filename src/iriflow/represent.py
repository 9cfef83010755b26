"""Representation at a named layer: one abstraction used by IRIs, CKA and
odd-one-out alike. 'penultimate' is the globally pooled feature vector; any
other name is a stage listed by the backbone's layer_names(), flattened."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .catalog import PENULTIMATE

Representation = Callable[[Tensor], Tensor]


def layer_names(model: nn.Module) -> list[str]:
    return list(model.backbone.layer_names())


def representation(model: nn.Module, layer: str = PENULTIMATE, fake_relu: bool = True) -> Representation:
    """x [B,C,H,W] in [0,1] -> r(x) [B, D]. fake_relu passes gradients
    straight through the final ReLU (only affects the backward pass)."""
    names = layer_names(model)
    if layer not in names:
        raise KeyError(f"layer {layer!r} is not a layer of {model.spec['arch']}; layers: {names}")
    if layer == PENULTIMATE:
        return lambda x: model.features(x, fake_relu=fake_relu)
    return lambda x: model.layers(x, (layer,), fake_relu=fake_relu)[layer].flatten(1)


@torch.inference_mode()
def extract(
    model: nn.Module, x: Tensor, layer: str = PENULTIMATE, batch_size: int = 256, device: torch.device | str = "cpu"
) -> Tensor:
    """Representations of many images, batched, without gradients (CPU tensor)."""
    model.eval()
    rep = representation(model, layer, fake_relu=False)
    return torch.cat([rep(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
