"""SimCLR training snapshots (Trainer.save_snapshot, every
``snapshot_every`` epochs) as models: which epochs exist and how to load one.

``snapshot_epochs`` needs no torch (the workflow plans the snapshot jobs at
start); ``load_snapshot`` rebuilds the network from the final model's spec.
A snapshot holds the network before the linear probe, so its head is not the
probed one; representations (the penultimate features or any stage) are
those of that epoch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def snapshot_epochs(recipe: Mapping[str, Any]) -> list[int]:
    """Epochs after which training writes a snapshot (multiples of
    snapshot_every up to the last epoch); [] without snapshots."""
    every = int(recipe.get("snapshot_every", 0) or 0)
    epochs = int(recipe["epochs"])
    return list(range(every, epochs + 1, every)) if every > 0 else []


def snapshot_path(snapshot_dir: str | Path, epoch: int) -> Path:
    return Path(snapshot_dir) / f"epoch{epoch:04d}.pt"


def load_snapshot(snapshot_dir: str | Path, epoch: int, info_path: str | Path, device="cpu"):
    """The network as it was after ``epoch`` (eval mode)."""
    import torch

    from .archs import build_model
    from .io import read_json

    path = snapshot_path(snapshot_dir, epoch)
    if not path.exists():
        raise FileNotFoundError(
            f"no snapshot of epoch {epoch}: {path} is missing (snapshots there: "
            f"{sorted(p.name for p in Path(snapshot_dir).glob('epoch*.pt'))})"
        )
    model = build_model(**read_json(info_path)["spec"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.to(device).eval()
