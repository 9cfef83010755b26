"""Model files and evaluation. A model is a plain state_dict (model.pt) plus
a JSON of what made it (model.json: the architecture spec to rebuild it, the
model id, objective, augmentation and recipe)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .archs import build_model, fold_batchnorm
from .device import memory_format
from .io import placement, read_json, torch_save, write_json
from .losses import ce_attack_loss
from .optim import pgd


def save_model(pt_path: str | Path, json_path: str | Path, model: nn.Module, info: Mapping[str, Any]) -> None:
    """Weights to pt_path; the architecture spec, ``info`` and where the job ran
    (host, scheduler job id, GPU grant) to json_path."""
    torch_save(pt_path, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    write_json(json_path, {"spec": model.spec, "placement": placement(), **info})


def load_model(
    pt_path: str | Path, json_path: str | Path | None = None, device: torch.device | str = "cpu"
) -> nn.Module:
    """Rebuild a model from model.pt and the spec in model.json (by default
    next to it), in eval mode."""
    pt_path = Path(pt_path)
    json_path = Path(json_path) if json_path else pt_path.with_suffix(".json")
    spec = read_json(json_path)["spec"]
    model = build_model(**spec)
    state = torch.load(pt_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{pt_path}: does not fit architecture {spec['arch']} (width {spec.get('width')}): {e}") from e
    return model.to(device).eval()


def frozen(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """A copy of ``model`` for inference and input gradients (IRIs, attacks
    on a trained model, Engstrom's procedures): eval mode, each BatchNorm
    that follows a convolution folded into it (iriflow.archs.fold_batchnorm;
    ~10% less time per forward and backward pass of the default ResNet-18 and
    VGG-16-BN on a CPU), no gradients for its parameters, in the channels-last
    memory format when ``channels_last``. ``model`` is left as it was."""
    out = fold_batchnorm(model).to(memory_format=memory_format(channels_last))
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def _external_key(key: str) -> str:
    """Map a torchvision / CIFAR-repo key onto Net's names (classifier -> head)."""
    for prefix in ("fc.", "linear.", "classifier."):
        if key.startswith(prefix):
            return "head." + key[len(prefix) :]
    return key if key.startswith(("mean", "std", "head.")) else f"backbone.{key}"


def load_external(path: str | Path, spec: Mapping[str, Any]) -> nn.Module:
    """A user-supplied state_dict for a registered architecture. Accepts a
    full Net state_dict, or a backbone + 'fc'/'linear'/'head' one."""
    model = build_model(**spec)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"external checkpoint {path} not found") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not any(k.startswith("backbone.") for k in state):
        state = {_external_key(k): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in ("mean", "std")]
    if missing or unexpected:
        raise ValueError(
            f"external checkpoint {path} does not fit {spec['arch']}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval()


@torch.inference_mode()
def clean_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    device: torch.device,
    fmt: torch.memory_format = torch.contiguous_format,
) -> float:
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size].to(device, memory_format=fmt))
        correct += (logits.argmax(1).cpu() == y[i : i + batch_size]).sum().item()
    return correct / len(x)


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Mapping[str, Any],
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    fmt: torch.memory_format = torch.contiguous_format,
) -> float:
    """Accuracy on PGD points maximising the cross-entropy (model in eval mode)."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, memory_format=fmt)
        yb = y[i : i + batch_size].to(device)
        x_adv = pgd(ce_attack_loss(model, yb), xb, attack, generator=gen, evaluate_last=False).x
        with torch.inference_mode():
            correct += (model(x_adv).argmax(1) == yb).sum().item()
    return correct / len(x)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Mapping[str, Mapping[str, Any]],
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Clean accuracy and robust accuracy under each named attack, of the
    frozen ``model`` (``frozen``: BatchNorms folded; ``model`` is left as it
    was); ``channels_last``: model and batches in that memory format (faster
    convolutions on CUDA and on the CPU; accuracies differ from contiguous
    ones by float rounding only)."""
    fmt = memory_format(channels_last)
    model = frozen(model, channels_last)
    out: dict[str, Any] = {"n_test": len(x), "clean_acc": clean_accuracy(model, x, y, batch_size, device, fmt)}
    for name, attack in attacks.items():
        out[f"robust_acc_{name}"] = robust_accuracy(model, x, y, attack, batch_size, device, seed, fmt)
    out["attacks"] = {k: dict(v) for k, v in attacks.items()}
    return out
