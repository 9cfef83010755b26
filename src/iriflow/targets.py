"""IRI targets: a seeded, class-balanced draw from the TEST split, without any
augmentation, shared by every model trained on the dataset."""

from __future__ import annotations

import numpy as np
import torch

from .datasets import DataError, Prepared
from .io import load_npz


def select_targets(labels: np.ndarray, n: int, num_classes: int, seed: int) -> np.ndarray:
    """Indices of ``n`` test images: n // num_classes per class, the remainder
    to randomly chosen classes; ordered by class, then by draw."""
    rng = np.random.default_rng(seed)
    per_class = np.full(num_classes, n // num_classes)
    per_class[rng.choice(num_classes, n % num_classes, replace=False)] += 1
    chosen = []
    for c in range(num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class[c]:
            raise DataError(
                f"class {c} has {len(pool)} test images; {per_class[c]} targets requested (targets.n = {n})"
            )
        chosen.append(rng.choice(pool, per_class[c], replace=False))
    return np.concatenate(chosen).astype(np.int64)


def target_arrays(prep: Prepared, n: int, seed: int) -> dict[str, np.ndarray]:
    idx = select_targets(prep.test_y, n, prep.num_classes, seed)
    return {"index": idx, "label": prep.test_y[idx], "images": prep.test_x[idx]}


def load_targets(path) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A targets.npz as (images [N,C,H,W] float in [0,1], labels, test-split indices)."""
    tg = load_npz(path)
    return torch.from_numpy(tg["images"]).float().div(255), torch.from_numpy(tg["label"]), tg["index"]
