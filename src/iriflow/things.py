"""Odd-one-out triplets (the THINGS convention), agreement with people's
choices, the object bootstrap, and the linear probe of Muttenthaler et al.
(2023).

A triplet is a row of three object indices whose LAST column is the odd one
out; the first two are the pair judged most alike (Hebart et al. 2020's
files). A representation chooses from a similarity matrix S: the pair with
the highest similarity stays, the third object is its odd one out (chance
1/3). Triplets that people or a matrix leave tied are marked, never guessed.

torch is imported only by the probe, so the analysis environment can use
the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHANCE = 1.0 / 3.0
# Pairs of a triplet (a, b, c) in column order, and the item each leaves out.
PAIRS = ((0, 1), (0, 2), (1, 2))
LEFT_OUT = np.array([2, 1, 0])
MAX_ENUMERATED = 5_000_000  # enumerate all triplets up to this many, else sample by rejection


class TripletFileError(ValueError):
    """A triplet or image list file that cannot be used; names the file and row."""


# --- triplets ---------------------------------------------------------------------------


def all_triplets(n_objects: int) -> np.ndarray:
    """Every unordered triplet i < j < k of ``n_objects`` objects, [C(n,3), 3]."""
    i, j, k = np.meshgrid(*(np.arange(n_objects),) * 3, indexing="ij", sparse=True)
    keep = (i < j) & (j < k)
    return np.stack(np.nonzero(keep), axis=1).astype(np.int64)


def sample_triplets(n_objects: int, n: int | None, seed: int) -> np.ndarray:
    """``n`` distinct unordered triplets drawn uniformly (sorted rows, sorted
    order), or all of them when ``n`` is None or at least C(n_objects, 3)."""
    if n_objects < 3:
        raise ValueError(f"need at least 3 objects for triplets, got {n_objects}")
    total = math.comb(n_objects, 3)
    if n is None or n >= total:
        if total > MAX_ENUMERATED:
            raise ValueError(f"{total} triplets of {n_objects} objects are too many to use all; set a number")
        return all_triplets(n_objects)
    rng = np.random.default_rng(seed)
    if total <= MAX_ENUMERATED:
        trip = all_triplets(n_objects)
        return trip[np.sort(rng.choice(total, size=n, replace=False))]
    found: set[tuple[int, int, int]] = set()
    while len(found) < n:
        draw = np.sort(rng.integers(0, n_objects, size=(2 * (n - len(found)), 3)), axis=1)
        for row in draw[(draw[:, 0] < draw[:, 1]) & (draw[:, 1] < draw[:, 2])]:
            found.add(tuple(int(v) for v in row))
            if len(found) == n:
                break
    return np.array(sorted(found), dtype=np.int64)


def pair_values(matrix: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """[m, 3]: matrix[a, b], matrix[a, c], matrix[b, c] of each triplet (a, b, c)."""
    t = np.asarray(triplets)
    return np.stack([matrix[t[:, p], t[:, q]] for p, q in PAIRS], axis=1)


def odd_from_dissimilarity(rdm: np.ndarray, triplets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each triplet so that its odd one out is last: the pair with the
    smallest dissimilarity stays. Returns (ordered triplets, tied) where
    ``tied`` marks triplets whose smallest dissimilarity is shared (no
    choice; the caller should drop them)."""
    d = pair_values(rdm, triplets)
    best = d.argmin(axis=1)
    tied = (d == d.min(axis=1, keepdims=True)).sum(axis=1) > 1
    t = np.asarray(triplets)
    odd = LEFT_OUT[best]
    rows = np.arange(len(t))
    keep = np.array([[1, 2], [0, 2], [0, 1]])[odd]  # the two positions that stay, in order
    ordered = np.stack([t[rows, keep[:, 0]], t[rows, keep[:, 1]], t[rows, odd]], axis=1)
    return ordered, tied


def choose_odd(similarity: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Position (0, 1, 2) of each triplet's odd one out under ``similarity``:
    the item left out by the most similar pair (ties: the first such pair)."""
    return LEFT_OUT[pair_values(similarity, triplets).argmax(axis=1)]


def agreement(similarity: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Per triplet (odd one out last), the credit of ``similarity``'s choice:
    1 when the kept pair (columns 0, 1) is strictly the most similar, 1/k when
    it ties with k - 1 other pairs for the maximum, else 0."""
    s = pair_values(similarity, triplets)
    top = s == s.max(axis=1, keepdims=True)
    return np.where(top[:, 0], 1.0 / top.sum(axis=1), 0.0)


def cosine_similarity(features: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows; a row of zeros is similar to nothing (0)."""
    x = np.asarray(features, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return x @ x.T


def within(triplets: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Boolean mask of the triplets whose three objects are all in ``objects``
    (a boolean mask over objects)."""
    return objects[triplets].all(axis=1)


# --- bootstrap over objects -----------------------------------------------------------


def object_resamples(n_objects: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_objects] indices drawn with replacement: the image
    bootstrap shared by the RSA and the triplet scores (same seed, same draws)."""
    return np.random.default_rng(seed).integers(0, n_objects, size=(n_boot, n_objects))


def percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        return float("nan"), float("nan")
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_mean(values: np.ndarray, triplets: np.ndarray, resamples: np.ndarray, chunk: int = 50) -> np.ndarray:
    """Bootstrap replicates of the mean of per-triplet ``values`` when the
    objects are resampled: a triplet of objects (a, b, c) occurs
    count_a * count_b * count_c times among the resampled objects."""
    values = np.asarray(values, dtype=np.float64)
    t = np.asarray(triplets)
    n_objects = resamples.shape[1]
    out = np.empty(len(resamples))
    for start in range(0, len(resamples), chunk):
        block = resamples[start : start + chunk]
        counts = np.stack([np.bincount(r, minlength=n_objects) for r in block]).astype(np.float64)
        w = counts[:, t[:, 0]] * counts[:, t[:, 1]] * counts[:, t[:, 2]]
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(block)] = (w @ values) / total
    return out


# --- the linear probe ------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSettings:
    folds: int = 3
    lambdas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1)
    steps: int = 100
    max_dim: int = 256
    seed: int = 0


def object_folds(n_objects: int, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of every object: a seeded permutation dealt round-robin."""
    if not 2 <= k <= n_objects:
        raise ValueError(f"probe folds: need 2 <= folds <= {n_objects} objects, got {k}")
    fold = np.empty(n_objects, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n_objects)] = np.arange(n_objects) % k
    return fold


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _reduce(x: np.ndarray, train: np.ndarray, max_dim: int) -> np.ndarray:
    """Project onto the top right-singular vectors of the training objects'
    (uncentred) features when there are more than ``max_dim`` features."""
    if x.shape[1] <= max_dim:
        return x
    _, _, vt = np.linalg.svd(x[train], full_matrices=False)
    return x @ vt[:max_dim].T


def fit_probe(x: np.ndarray, triplets: np.ndarray, lam: float, steps: int = 100) -> np.ndarray:
    """W (p x p) minimising the mean triplet cross-entropy of softmax over the
    three pair similarities (x_i W) . (x_j W) (the kept pair is the target)
    plus lam * ||W||_F^2; rows of ``x`` are scaled to unit length and W starts
    at the identity (the cosine similarity). Full-batch L-BFGS, float64."""
    import torch

    t = np.asarray(triplets, dtype=np.int64)
    used = np.unique(t)  # only the objects of the triplets enter the loss
    xt = torch.as_tensor(_unit_rows(np.asarray(x, dtype=np.float64)[used]))
    local = np.searchsorted(used, t)
    n = len(used)
    flat = torch.as_tensor(np.stack([local[:, p] * n + local[:, q] for p, q in PAIRS], axis=1).ravel())
    w = torch.eye(xt.shape[1], dtype=torch.float64, requires_grad=True)
    target = torch.zeros(len(t), dtype=torch.long)
    opt = torch.optim.LBFGS(
        [w],
        lr=1.0,
        max_iter=steps,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        z = xt @ w
        logits = (z @ z.T).reshape(-1).index_select(0, flat).reshape(-1, 3)
        loss = torch.nn.functional.cross_entropy(logits, target) + lam * (w * w).sum()
        loss.backward()
        return loss

    if len(t):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: threads only add overhead (10x on a busy machine)
        try:
            opt.step(closure)
        finally:
            torch.set_num_threads(threads)
    return w.detach().numpy()


def probe_similarity(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = _unit_rows(np.asarray(x, dtype=np.float64)) @ w
    return z @ z.T


@dataclass
class ProbeResult:
    """Held-out triplets of every fold (pooled), with the zero-shot (cosine)
    and the probed credit of each, and the lambda chosen per fold."""

    triplets: np.ndarray
    zero_shot: np.ndarray
    probed: np.ndarray
    fold: np.ndarray
    lambdas: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        per_fold = [
            (float(self.zero_shot[self.fold == f].mean()), float(self.probed[self.fold == f].mean()))
            for f in range(len(self.lambdas))
        ]
        return {
            "lambdas": self.lambdas,
            "fold_zero_shot": [a for a, _ in per_fold],
            "fold_probed": [b for _, b in per_fold],
            "n_heldout": int(len(self.triplets)),
        }


def _select_lambda(x: np.ndarray, triplets: np.ndarray, train: np.ndarray, settings: ProbeSettings, seed: int) -> float:
    """The lambda with the best accuracy on an inner split of the training
    objects (1/folds of them held out); ties go to the larger lambda."""
    lambdas = sorted(settings.lambdas)
    if len(lambdas) == 1:
        return float(lambdas[0])
    objects = np.flatnonzero(train)
    rng = np.random.default_rng(seed)
    inner_val = np.zeros_like(train)
    inner_val[rng.choice(objects, size=max(3, len(objects) // settings.folds), replace=False)] = True
    inner_train = train & ~inner_val
    fit_t, val_t = triplets[within(triplets, inner_train)], triplets[within(triplets, inner_val)]
    if not len(fit_t) or not len(val_t):
        return float(lambdas[-1])
    scores = [agreement(probe_similarity(x, fit_probe(x, fit_t, lam, settings.steps)), val_t).mean() for lam in lambdas]
    best = max(scores)
    return float(max(lam for lam, s in zip(lambdas, scores) if s >= best - 1e-12))


def cross_validated_probe(features: np.ndarray, triplets: np.ndarray, settings: ProbeSettings) -> ProbeResult:
    """k-fold cross-validation over OBJECTS: each fold's probe is fitted on
    the triplets of the other folds' objects (its lambda chosen on an inner
    split of them) and scored on the triplets whose three objects are all in
    the fold. Triplets that straddle folds are used by no fold."""
    x = np.asarray(features, dtype=np.float64)
    triplets = np.asarray(triplets, dtype=np.int64)
    fold_of = object_folds(len(x), settings.folds, settings.seed)
    zero = agreement(cosine_similarity(x), triplets)
    parts, lambdas = [], []
    for f in range(settings.folds):
        test_objects = fold_of == f
        train_objects = ~test_objects
        xr = _reduce(x, train_objects, settings.max_dim)
        lam = _select_lambda(xr, triplets, train_objects, settings, settings.seed + 1 + f)
        w = fit_probe(xr, triplets[within(triplets, train_objects)], lam, settings.steps)
        test = np.flatnonzero(within(triplets, test_objects))
        probed = agreement(probe_similarity(xr, w), triplets[test])
        parts.append((test, probed, np.full(len(test), f)))
        lambdas.append(lam)
    idx = np.concatenate([p[0] for p in parts])
    return ProbeResult(
        triplets=triplets[idx],
        zero_shot=zero[idx],
        probed=np.concatenate([p[1] for p in parts]),
        fold=np.concatenate([p[2] for p in parts]),
        lambdas=lambdas,
    )


# --- THINGS files ----------------------------------------------------------------------

_SEP = re.compile(r"[\s,;]+")


def read_triplets(path: str | Path, n_objects: int | None = None, index_base: int = 0) -> np.ndarray:
    """A THINGS-style triplet file: one triplet per row, three integer object
    indices separated by whitespace or commas, the LAST being the odd one out
    (the person's choice). Blank lines and lines starting with '#' are
    skipped, as is a first row of column names. Returns 0-based indices.
    Errors name the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise TripletFileError(f"{path}: triplet file not found")
    rows, first = [], True
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = [f for f in _SEP.split(text) if f]
        header = first and not any(_is_int(f) for f in fields)
        first = False
        if header:
            continue
        where = f"{path}: row {number} ({text!r})"
        if len(fields) != 3 or not all(_is_int(f) for f in fields):
            raise TripletFileError(f"{where}: expected 3 integer object indices, the last the odd one out")
        ids = [int(f) - index_base for f in fields]
        if len(set(ids)) != 3:
            raise TripletFileError(f"{where}: the three objects must differ")
        bad = [i + index_base for i in ids if i < 0 or (n_objects is not None and i >= n_objects)]
        if bad:
            top = "" if n_objects is None else f"..{n_objects - 1 + index_base}"
            raise TripletFileError(
                f"{where}: index {bad[0]} is outside {index_base}{top} (index base {index_base}, {n_objects} images)"
            )
        rows.append(ids)
    if not rows:
        raise TripletFileError(f"{path}: no triplets")
    return np.array(rows, dtype=np.int64)


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def list_images(path: str | Path) -> list[Path]:
    """The images of a triplet set in index order: a folder (image files
    sorted by name; index 0 is the first) or a text file with one image path
    per line (relative paths are relative to the file's folder)."""
    from .datasets import IMAGE_SUFFIXES

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TripletFileError(f"{path}: no images (expected files ending in {sorted(IMAGE_SUFFIXES)})")
        return files
    if not path.is_file():
        raise TripletFileError(f"{path}: image folder or list not found")
    files = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        p = Path(text) if Path(text).is_absolute() else path.parent / text
        if not p.is_file():
            raise TripletFileError(f"{path}: row {number}: image {p} not found")
        files.append(p)
    if not files:
        raise TripletFileError(f"{path}: lists no images")
    return files


def repeat_ceiling(triplets: np.ndarray) -> tuple[float, int]:
    """Noise ceiling from repeated triplets: for every triplet asked at least
    twice (as an unordered set), each answer is predicted by the majority of
    the other answers to it (ties split); the ceiling is the mean credit.
    Returns (ceiling, number of repeated triplets); NaN and 0 without repeats."""
    t = np.asarray(triplets)
    keys = np.sort(t, axis=1)
    _, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    credits = []
    for g in np.flatnonzero(counts >= 2):
        odd = t[group == g, 2]
        values, n = np.unique(odd, return_counts=True)
        tally = dict(zip(values.tolist(), n.tolist()))
        for answer in odd:
            others = dict(tally)
            others[answer] -= 1
            top = max(others.values())
            winners = [v for v, c in others.items() if c == top]
            credits.append(1.0 / len(winners) if answer in winners else 0.0)
    if not credits:
        return float("nan"), 0
    return float(np.mean(credits)), int((counts >= 2).sum())


def normalised_score(accuracy: float, ceiling: float, chance: float = CHANCE) -> float:
    """(accuracy - chance) / (ceiling - chance): 0 at chance, 1 at the ceiling."""
    if not np.isfinite(ceiling) or ceiling <= chance:
        return float("nan")
    return float((accuracy - chance) / (ceiling - chance))
