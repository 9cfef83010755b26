"""Representational alignment with people's similarity judgments of the 92
object images (Kriegeskorte et al. 2008; Mur et al. 2013): the verified
download of the data, dissimilarity matrices (RDMs), RSA with a noise
ceiling, the image bootstrap, and the odd-one-out scores of a
representation (iriflow.things).

RSA against behaviour is the mean over participants of the Spearman
correlation between the upper triangles of the model's RDM and each
participant's RDM; its noise ceiling (Nili et al. 2014) is the same mean for
the group-mean RDM with (upper bound) and without (lower bound) the
participant. Only numpy/scipy at import time (analysis environment).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .io import load_npz, save_npz, tex_escape
from .registry import Registry
from .things import (
    CHANCE,
    ProbeSettings,
    agreement,
    bootstrap_mean,
    cosine_similarity,
    cross_validated_probe,
    normalised_score,
    object_resamples,
    odd_from_dissimilarity,
    percentile_ci,
    repeat_ceiling,
    sample_triplets,
)

RSA92_COMMIT = "f1f83cadb7243492a1aae7460466e0f0140b20ac"
RSA92_BASE_URL = f"https://github.com/rsagroup/rsatoolbox/raw/{RSA92_COMMIT}/demos/92imageData"
N_IMAGES = 92


class FetchError(RuntimeError):
    """A data file that is neither in the cache nor downloadable; says what to do."""


class ChecksumError(FetchError):
    """A file whose sha256 is not the pinned one."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    what: str


RSA92_FILES = {
    "behaviour": RemoteFile(
        "92_behavRDMs.mat",
        "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f",
        "16 participants' similarity-judgment RDMs (Mur et al. 2013)",
    ),
    "kriegeskorte": RemoteFile(
        "Kriegeskorte_Neuron2008_supplementalData.mat",
        "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504",
        "the 92 images with categories, human and monkey IT RDMs (Kriegeskorte et al. 2008)",
    ),
}


# --- download with checksums -------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_cache(configured: str, bundled: str | Path) -> Path:
    """Where the two files are read from: rsa.cache when set (a folder that
    has them, or where they are downloaded to), else ``bundled``, the copy
    committed with the workflow (resources/rsa92, with its NOTICE)."""
    return Path(configured) if configured else Path(bundled)


def _how_to_provide(remote: RemoteFile, cache: Path, url: str) -> str:
    return (
        f"Download {url} (sha256 {remote.sha256}) and put it into {cache}/, or point rsa.cache "
        "at a folder that has it (rsa.cache: '' uses the copy committed in resources/rsa92)."
    )


def fetch_verified(
    remote: RemoteFile, cache: str | Path, base_url: str = RSA92_BASE_URL, download: bool = True, timeout: float = 60.0
) -> tuple[Path, str]:
    """The path of ``remote`` in ``cache`` with its pinned sha256, and where it
    came from ("cache" or "downloaded"). A missing or wrong cached copy is
    downloaded (when allowed) into a temporary file beside it, checked, and
    only then moved into place; a wrong checksum is a ChecksumError naming the
    file and both checksums, and leaves no file behind."""
    cache = Path(cache)
    target = cache / remote.name
    url = f"{base_url.rstrip('/')}/{remote.name}"
    problem = ""
    if target.is_file():
        actual = sha256_file(target)
        if actual == remote.sha256:
            return target, "cache"
        problem = f"{target}: sha256 {actual}, expected {remote.sha256}"
        if not download:
            raise ChecksumError(
                f"{problem} (a wrong or damaged copy; rsa.download is false). " + _how_to_provide(remote, cache, url)
            )
    elif not download:
        raise FetchError(f"{target} is missing and rsa.download is false. " + _how_to_provide(remote, cache, url))
    tmp = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=cache)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_file(tmp)
        if actual != remote.sha256:
            raise ChecksumError(
                f"{remote.name} downloaded from {url} has sha256 {actual}, expected "
                f"{remote.sha256}; it was not kept. " + _how_to_provide(remote, cache, url)
            )
        os.replace(tmp, target)
        tmp = None
    except ChecksumError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        before = f"{problem}; " if problem else ""
        raise FetchError(f"{before}could not download {url} ({e}). " + _how_to_provide(remote, cache, url)) from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return target, "downloaded"


# --- the 92 images and their RDMs ---------------------------------------------------------


@dataclass
class HumanData:
    behaviour: np.ndarray  # [participants, 92, 92] similarity-judgment RDMs
    hit: np.ndarray  # [92, 92] human IT (fMRI)
    mit: np.ndarray  # [92, 92] monkey IT (cell recordings)
    images: np.ndarray  # [92, H, W, 3] uint8
    categories: np.ndarray  # [92, 12] 0/1
    category_labels: list[str]
    participants: list[str]

    @property
    def group_mean(self) -> np.ndarray:
        return self.behaviour.mean(axis=0)

    def references(self) -> dict[str, np.ndarray]:
        """Reference RDM stacks by measure; RSA is the mean over a stack's RDMs."""
        return {
            "rsa:behaviour": self.behaviour,
            "rsa:behaviour-mean": self.group_mean[None],
            "rsa:hIT": self.hit[None],
            "rsa:mIT": self.mit[None],
        }

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            behaviour=self.behaviour,
            hit=self.hit,
            mit=self.mit,
            images=self.images,
            categories=self.categories,
            category_labels=np.array(self.category_labels),
            participants=np.array(self.participants),
        )

    @classmethod
    def load(cls, path: str | Path) -> HumanData:
        z = load_npz(path)
        return cls(
            z["behaviour"],
            z["hit"],
            z["mit"],
            z["images"],
            z["categories"],
            [str(v) for v in z["category_labels"]],
            [str(v) for v in z["participants"]],
        )


def _text(value: Any) -> str:
    return str(np.asarray(value).ravel()[0]) if np.asarray(value).size else ""


def _square(vector_or_matrix: np.ndarray, where: str) -> np.ndarray:
    from scipy.spatial.distance import squareform

    a = np.asarray(vector_or_matrix, dtype=np.float64)
    if a.ndim == 2 and a.shape == (N_IMAGES, N_IMAGES):
        return a
    a = a.ravel()
    if a.size != N_IMAGES * (N_IMAGES - 1) // 2:
        raise ValueError(f"{where}: expected a 92x92 RDM or its 4186 upper-triangle entries, got {a.size} values")
    return squareform(a)


def _field(struct: np.ndarray, name: str, where: str) -> Any:
    if struct.dtype.names is None or name not in struct.dtype.names:
        raise ValueError(f"{where}: no field {name!r} (fields: {struct.dtype.names})")
    return struct[name]


def load_rsa92(behaviour_mat: str | Path, kriegeskorte_mat: str | Path) -> HumanData:
    """Read the two MATLAB files (scipy.io.loadmat) into arrays, checking shapes."""
    from scipy.io import loadmat

    b = loadmat(behaviour_mat)
    if "rdms_behav_92" not in b:
        raise ValueError(f"{behaviour_mat}: no variable 'rdms_behav_92'")
    rdms = b["rdms_behav_92"].ravel()
    behaviour = np.stack(
        [
            _square(
                _field(r, "RDM", f"{behaviour_mat}: rdms_behav_92[{i}]"), f"{behaviour_mat}: rdms_behav_92[{i}].RDM"
            )
            for i, r in enumerate(rdms)
        ]
    )
    names = [_text(_field(r, "name", f"{behaviour_mat}: rdms_behav_92[{i}]")) for i, r in enumerate(rdms)]
    k = loadmat(kriegeskorte_mat)
    for var in ("stimuli_92objs", "RDMs_mIT_hIT_fig1", "categoryVectors", "categoryLabels"):
        if var not in k:
            raise ValueError(f"{kriegeskorte_mat}: no variable {var!r}")
    it = {_text(_field(r, "name", f"{kriegeskorte_mat}: RDMs_mIT_hIT_fig1")): r for r in k["RDMs_mIT_hIT_fig1"].ravel()}

    def it_rdm(prefix: str) -> np.ndarray:
        hits = [n for n in it if n.startswith(prefix)]
        if len(hits) != 1:
            raise ValueError(f"{kriegeskorte_mat}: expected one RDM named {prefix}*, found {sorted(it)}")
        return _square(it[hits[0]]["RDM"], f"{kriegeskorte_mat}: {hits[0]}")

    stimuli = k["stimuli_92objs"].ravel()
    images = np.stack([np.asarray(s["image"], dtype=np.uint8) for s in stimuli])
    categories = np.asarray(k["categoryVectors"], dtype=np.uint8)
    labels = [_text(v) for v in k["categoryLabels"].ravel()]
    if len(images) != N_IMAGES or images.ndim != 4 or images.shape[-1] != 3 or categories.shape[0] != N_IMAGES:
        raise ValueError(
            f"{kriegeskorte_mat}: expected 92 RGB images and 92 category rows, got images "
            f"{images.shape} and categories {categories.shape}"
        )
    data = HumanData(behaviour, it_rdm("hIT"), it_rdm("mIT"), images, categories, labels, names)
    check_rdms(data)
    return data


def check_rdms(data: HumanData) -> None:
    for name, stack in (("behaviour", data.behaviour), ("hIT", data.hit[None]), ("mIT", data.mit[None])):
        if stack.shape[1:] != (N_IMAGES, N_IMAGES) or not np.isfinite(stack).all():
            raise ValueError(f"{name}: expected finite 92x92 RDMs, got shape {stack.shape}")
        if not np.allclose(stack, stack.transpose(0, 2, 1)):
            raise ValueError(f"{name}: RDMs are not symmetric")
    if len(data.behaviour) < 2:
        raise ValueError("behaviour: the noise ceiling needs at least 2 participants")


# --- RDMs and RSA -------------------------------------------------------------------------

RDM_METRICS = Registry("RDM metric")


@RDM_METRICS.register("correlation")
def _correlation(x: np.ndarray) -> np.ndarray:
    """1 - Pearson r of the feature vectors; a constant vector counts as uncorrelated (1)."""
    x = x - x.mean(axis=1, keepdims=True)
    return 1.0 - cosine_similarity(x)


@RDM_METRICS.register("cosine")
def _cosine(x: np.ndarray) -> np.ndarray:
    return 1.0 - cosine_similarity(x)


@RDM_METRICS.register("euclidean")
def _euclidean(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))


def rdm(features: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """[n, n] dissimilarities of the rows of ``features`` (zero diagonal)."""
    d = RDM_METRICS[metric](np.asarray(features, dtype=np.float64).reshape(len(features), -1))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def upper(matrix: np.ndarray) -> np.ndarray:
    """The upper triangle (above the diagonal), row by row (MATLAB's squareform order)."""
    return matrix[np.triu_indices(matrix.shape[-1], 1)]


def _pearson_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    yc = ys - ys.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum() * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (yc @ xc) / den


def spearman_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman correlation of vector ``x`` with each row of ``ys`` (average ranks for ties)."""
    return _pearson_rows(rankdata(x), rankdata(np.atleast_2d(ys), axis=1))


def rsa(model_rdm: np.ndarray, reference_rdms: np.ndarray) -> float:
    """Mean over the reference RDMs [k, n, n] of the Spearman correlation of
    their upper triangles with the model's."""
    refs = reference_rdms if reference_rdms.ndim == 3 else reference_rdms[None]
    iu = np.triu_indices(model_rdm.shape[0], 1)
    return float(spearman_rows(model_rdm[iu], refs[:, iu[0], iu[1]]).mean())


def _ceiling(vectors: np.ndarray) -> tuple[float, float]:
    ranks = rankdata(vectors, axis=1)
    total = vectors.sum(axis=0)
    up = _pearson_rows(rankdata(total), ranks)
    low = [_pearson_rows(rankdata(total - v), r[None])[0] for v, r in zip(vectors, ranks)]
    return float(np.mean(low)), float(np.mean(up))


def noise_ceiling(rdms: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bound of the mean Spearman correlation that the true
    model could reach with these participants' RDMs [s, n, n]: each
    participant against the mean of the others (lower) and of all (upper)."""
    iu = np.triu_indices(rdms.shape[-1], 1)
    return _ceiling(rdms[:, iu[0], iu[1]])


class _Ranker:
    """Midranks of a fixed vector of values under any multiplicities: in a
    bootstrap sample a value occurs w times, and ties (equal values, or one
    value drawn several times) share the mean of the ranks they occupy. One
    sort up front, none per resample."""

    def __init__(self, values: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        self.inverse = np.argsort(self.order)
        ordered = values[self.order]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        self.starts = np.flatnonzero(first)
        self.group = np.cumsum(first) - 1
        self.tied = len(self.starts) < len(values)

    def ranks(self, weights: np.ndarray) -> np.ndarray:
        """[B, m] midranks (in the values' order) for weights [B, m]."""
        w = weights[:, self.order]
        total = np.add.reduceat(w, self.starts, axis=1) if self.tied else w
        mid = np.cumsum(total, axis=1) - total / 2 + 0.5
        return (mid[:, self.group] if self.tied else mid)[:, self.inverse]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of x and y [B, m] with weights w [B, m]."""
    total = w.sum(axis=1, keepdims=True)
    xc = x - (w * x).sum(axis=1, keepdims=True) / total
    yc = y - (w * y).sum(axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * xc * yc).sum(axis=1) / np.sqrt((w * xc * xc).sum(axis=1) * (w * yc * yc).sum(axis=1))


def pair_weights(resamples: np.ndarray) -> np.ndarray:
    """[B, n(n-1)/2]: how often each pair of distinct images (upper-triangle
    order) occurs among the pairs of each bootstrap sample of images. Pairs of
    two draws of the same image are left out (their dissimilarity is 0 by
    definition), as in resampling the RDM's rows and columns."""
    n = resamples.shape[1]
    counts = np.stack([np.bincount(r, minlength=n) for r in resamples]).astype(np.float64)
    a, b = np.triu_indices(n, 1)
    return counts[:, a] * counts[:, b]


def _chunks(resamples: np.ndarray, size: int = 100):
    for start in range(0, len(resamples), size):
        yield start, pair_weights(resamples[start : start + size])


def bootstrap_rsa(
    model_rdm: np.ndarray, references: Mapping[str, np.ndarray], resamples: np.ndarray
) -> dict[str, np.ndarray]:
    """Replicates of ``rsa`` for each reference stack, images resampled
    (exactly the Spearman correlations of the resampled RDMs' pairs)."""
    iu = np.triu_indices(model_rdm.shape[0], 1)
    model = _Ranker(model_rdm[iu])
    refs = {name: [_Ranker(r[iu]) for r in stack] for name, stack in references.items()}
    out = {name: np.empty(len(resamples)) for name in references}
    for start, w in _chunks(resamples):
        mr = model.ranks(w)
        for name, rankers in refs.items():
            out[name][start : start + len(w)] = np.mean([_weighted_pearson(mr, r.ranks(w), w) for r in rankers], axis=0)
    return out


def bootstrap_ceiling(rdms: np.ndarray, resamples: np.ndarray) -> np.ndarray:
    """[n_boot, 2] replicates of (lower, upper) with images resampled."""
    iu = np.triu_indices(rdms.shape[-1], 1)
    vectors = rdms[:, iu[0], iu[1]]
    total = vectors.sum(axis=0)
    own = [_Ranker(v) for v in vectors]
    everyone = _Ranker(total)
    others = [_Ranker(total - v) for v in vectors]
    out = np.empty((len(resamples), 2))
    for start, w in _chunks(resamples):
        ranks = [r.ranks(w) for r in own]
        all_ranks = everyone.ranks(w)
        out[start : start + len(w), 0] = np.mean(
            [_weighted_pearson(r, o.ranks(w), w) for r, o in zip(ranks, others)], axis=0
        )
        out[start : start + len(w), 1] = np.mean([_weighted_pearson(r, all_ranks, w) for r in ranks], axis=0)
    return out


# --- odd-one-out triplets of the 92 images --------------------------------------------------


def human_triplets(data: HumanData, n: int | None, seed: int) -> tuple[np.ndarray, int]:
    """Triplets sampled from the group-mean RDM, ordered so that the odd one
    out (the item outside the least dissimilar pair) is last, with tied
    triplets dropped; returns (triplets, number dropped)."""
    ordered, tied = odd_from_dissimilarity(data.group_mean, sample_triplets(N_IMAGES, n, seed))
    return ordered[~tied], int(tied.sum())


def participant_agreement(rdms: np.ndarray, triplets: np.ndarray) -> tuple[float, float]:
    """How often one participant's RDM picks the group's odd one out: the
    mean over participants of their agreement with the triplets ordered by
    the mean of the OTHER participants (lower) or by the mean of all
    (``triplets``; upper). The reference for a model's agreement."""
    total = rdms.sum(axis=0)
    lower, upper_ = [], []
    for own in rdms:
        others, tied = odd_from_dissimilarity((total - own) / (len(rdms) - 1), triplets)
        lower.append(agreement(-own, others[~tied]).mean())
        upper_.append(agreement(-own, triplets).mean())
    return float(np.mean(lower)), float(np.mean(upper_))


# --- scores of one representation -------------------------------------------------------------

MEASURES = {
    "rsa:behaviour": ("RSA with behaviour (mean over participants)", 0.0),
    "rsa:behaviour-mean": ("RSA with the group-mean behaviour RDM", 0.0),
    "rsa:hIT": ("RSA with human IT", 0.0),
    "rsa:mIT": ("RSA with monkey IT", 0.0),
    "ooo:zero-shot": ("odd-one-out agreement, zero-shot (cosine), all triplets", CHANCE),
    "ooo:heldout-zero-shot": ("odd-one-out agreement, zero-shot, held-out triplets", CHANCE),
    "ooo:probed": ("odd-one-out agreement, linear probe, held-out triplets", CHANCE),
    "things:zero-shot": ("THINGS odd-one-out accuracy, zero-shot (cosine)", CHANCE),
    "things:normalised": ("THINGS odd-one-out accuracy, noise-ceiling normalised", 0.0),
    "things:heldout-zero-shot": ("THINGS odd-one-out accuracy, zero-shot, held-out triplets", CHANCE),
    "things:probed": ("THINGS odd-one-out accuracy, linear probe, held-out triplets", CHANCE),
}


def score_row(measure: str, value: float, samples: np.ndarray, level: float, n: int, **detail: Any) -> dict:
    lo, hi = percentile_ci(samples, level)
    return {
        "measure": measure,
        "value": float(value),
        "ci_lo": lo,
        "ci_hi": hi,
        "n": int(n),
        "chance": MEASURES.get(measure, ("", CHANCE))[1],
        "detail": json.dumps(detail, sort_keys=True),
    }


def score_rdm(
    model_rdm: np.ndarray,
    similarity: np.ndarray,
    data: HumanData,
    triplets: np.ndarray,
    resamples: np.ndarray,
    level: float,
) -> list[dict]:
    """RSA with every reference and zero-shot odd-one-out agreement, each
    with its image-bootstrap percentile CI (the same resamples for all)."""
    refs = data.references()
    boot = bootstrap_rsa(model_rdm, refs, resamples)
    pairs = N_IMAGES * (N_IMAGES - 1) // 2
    rows = [
        score_row(name, rsa(model_rdm, stack), boot[name], level, pairs, rdms=len(stack))
        for name, stack in refs.items()
    ]
    credit = agreement(similarity, triplets)
    rows.append(
        score_row("ooo:zero-shot", credit.mean(), bootstrap_mean(credit, triplets, resamples), level, len(triplets))
    )
    return rows


def probe_rows(
    features: np.ndarray,
    triplets: np.ndarray,
    resamples: np.ndarray,
    level: float,
    settings: ProbeSettings,
    prefix: str = "ooo",
) -> list[dict]:
    """Zero-shot vs linear-probe agreement on the same held-out triplets."""
    result = cross_validated_probe(features, triplets, settings)
    info = result.summary()
    n = len(result.triplets)
    return [
        score_row(
            f"{prefix}:heldout-zero-shot",
            result.zero_shot.mean(),
            bootstrap_mean(result.zero_shot, result.triplets, resamples),
            level,
            n,
            **info,
        ),
        score_row(
            f"{prefix}:probed",
            result.probed.mean(),
            bootstrap_mean(result.probed, result.triplets, resamples),
            level,
            n,
            **info,
        ),
    ]


def probe_settings(cfg: Mapping[str, Any]) -> ProbeSettings:
    return ProbeSettings(
        folds=cfg["folds"], lambdas=tuple(cfg["lambdas"]), steps=cfg["steps"], max_dim=cfg["max_dim"], seed=cfg["seed"]
    )


def score_features(
    features: np.ndarray,
    data: HumanData,
    triplets: np.ndarray,
    settings: Mapping[str, Any],
    log: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Every score of a representation of the 92 images ([92, ...] features):
    RSA of its RDM (rsa.rdm_metric), zero-shot odd-one-out agreement of its
    cosine similarity, and (rsa.probe.enabled) the cross-validated probe."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    boot = settings["bootstrap"]
    resamples = object_resamples(len(x), boot["n"], boot["seed"])
    rows = score_rdm(rdm(x, settings["rdm_metric"]), cosine_similarity(x), data, triplets, resamples, boot["level"])
    if settings["probe"]["enabled"]:
        rows += probe_rows(x, triplets, resamples, boot["level"], probe_settings(settings["probe"]))
    for r in rows:
        log(f"{r['measure']}: {r['value']:.4f} [{r['ci_lo']:.4f}, {r['ci_hi']:.4f}] (n = {r['n']})")
    if settings["probe"]["enabled"]:
        log(f"probe: {rows[-1]['detail']}")
    return rows


def things_ceiling(triplets: np.ndarray, configured: float | None) -> tuple[float, str]:
    """The noise ceiling of THINGS-style triplets and where it came from:
    rsa.things.ceiling when set, else estimated from repeated triplets, else NaN."""
    if configured is not None:
        return float(configured), "rsa.things.ceiling"
    ceiling, repeated = repeat_ceiling(triplets)
    if repeated:
        return ceiling, f"{repeated} repeated triplets"
    return ceiling, "none (no repeated triplets and rsa.things.ceiling unset)"


def score_things(
    features: np.ndarray, triplets: np.ndarray, ceiling: float, settings: Mapping[str, Any], ceiling_source: str = ""
) -> list[dict]:
    """Zero-shot odd-one-out accuracy (cosine) of a representation on
    THINGS-style triplets (odd one out last), its noise-ceiling-normalised
    score (accuracy - 1/3) / (ceiling - 1/3), and the probe, with
    object-bootstrap CIs."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    boot = settings["bootstrap"]
    resamples = object_resamples(len(x), boot["n"], boot["seed"])
    credit = agreement(cosine_similarity(x), triplets)
    samples = bootstrap_mean(credit, triplets, resamples)
    accuracy = float(credit.mean())
    normalised = np.array([normalised_score(v, ceiling) for v in samples])
    rows = [
        score_row(
            "things:zero-shot",
            accuracy,
            samples,
            boot["level"],
            len(triplets),
            ceiling=ceiling,
            ceiling_source=ceiling_source,
        ),
        score_row(
            "things:normalised",
            normalised_score(accuracy, ceiling),
            normalised,
            boot["level"],
            len(triplets),
            ceiling=ceiling,
        ),
    ]
    if settings["probe"]["enabled"]:
        rows += probe_rows(x, triplets, resamples, boot["level"], probe_settings(settings["probe"]), "things")
    return rows


# --- images for a model ---------------------------------------------------------------------------


def model_inputs(images: Sequence[Any], in_channels: int, size: Sequence[int]) -> np.ndarray:
    """[n, in_channels, H, W] float32 in [0, 1]: each image (uint8 array or
    PIL image) centre-cropped to a square, converted to grayscale (1 channel)
    or RGB (3), and resized with antialiasing (Lanczos) to ``size`` (H, W)."""
    from PIL import Image

    if in_channels not in (1, 3):
        raise ValueError(f"models with {in_channels} input channels are not supported (1 or 3)")
    h, w = int(size[0]), int(size[1])
    out = np.empty((len(images), in_channels, h, w), dtype=np.float32)
    for n, img in enumerate(images):
        pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
        side = min(pil.size)
        left, top = (pil.size[0] - side) // 2, (pil.size[1] - side) // 2
        pil = pil.crop((left, top, left + side, top + side)).convert("L" if in_channels == 1 else "RGB")
        arr = np.asarray(pil.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
        out[n] = arr[None] if in_channels == 1 else arr.transpose(2, 0, 1)
    return out


# --- the table and the summary -------------------------------------------------------------------

KIND_ORDER = ("model", "baseline", "reference")
TABLE_COLUMNS = (  # (measure, header, percent)
    ("rsa:behaviour", "RSA behaviour", False),
    ("rsa:hIT", "RSA hIT", False),
    ("ooo:zero-shot", "odd-one-out % (zero-shot)", True),
    ("ooo:heldout-zero-shot", "held-out % zero-shot", True),
    ("ooo:probed", "held-out % probed", True),
    ("things:zero-shot", "THINGS % zero-shot", True),
    ("things:normalised", "THINGS normalised", False),
)


def wide_scores(
    scores: pd.DataFrame, models_cfg: Mapping[str, Any], levels: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """One row per scored representation (models, baselines, references) with
    value, ci_lo and ci_hi of every measure as <measure>, <measure>_lo and
    <measure>_hi, and the design factors of the models; in table order."""

    from .analysis import model_factors

    keys = ["kind", "dataset", "model", "layer"]
    s = scores.assign(**{k: scores[k].fillna("").astype(str) for k in keys})
    wide = s.pivot_table(index=keys, columns="measure", values=["value", "ci_lo", "ci_hi"], aggfunc="first")
    flat = pd.DataFrame(index=wide.index)
    for measure in dict.fromkeys(s["measure"]):
        flat[measure] = wide[("value", measure)]
        flat[f"{measure}_lo"] = wide[("ci_lo", measure)]
        flat[f"{measure}_hi"] = wide[("ci_hi", measure)]
    flat = flat.reset_index()
    factors = [
        model_factors(f"{r.dataset}/{r.model}", models_cfg)
        if r.kind == "model"
        else {"arch": "", "objective": "", "augmentation": "", "variant": r.model}
        for r in flat.itertuples()
    ]
    for name in ("arch", "objective", "augmentation", "variant"):
        flat[name] = [f[name] for f in factors]

    def rank(column: str, value: str) -> int:
        order = list(levels.get(column, []))
        return order.index(value) if value in order else len(order)

    flat["_order"] = [
        (
            KIND_ORDER.index(r.kind),
            r.dataset,
            rank("arch", r.arch),
            rank("objective", r.objective),
            rank("augmentation", r.augmentation),
            r.model,
            r.layer,
        )
        for r in flat.itertuples()
    ]
    flat = flat.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    front = ["kind", "dataset", "model", "arch", "objective", "augmentation", "variant", "layer"]
    return flat[front + [c for c in flat.columns if c not in front]]


def _cell(row: Mapping[str, Any], measure: str, percent: bool) -> str:
    value = row.get(measure, float("nan"))
    if value is None or not np.isfinite(value):
        return ""
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    lo, hi = row.get(f"{measure}_lo", float("nan")), row.get(f"{measure}_hi", float("nan"))
    ci = f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{scale * value:.{digits}f}{ci}"


def table_rows(wide: pd.DataFrame, ceiling: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows of cells) of the RSA table: the measures present, the
    noise ceiling and the participants' odd-one-out agreement last."""
    columns = [c for c in TABLE_COLUMNS if c[0] in wide.columns]
    header = ["representation", "architecture", "objective", "augmentation", "layer"] + [c[1] for c in columns]
    rows = []
    for r in wide.to_dict("records"):
        name = {"model": f"{r['dataset']}/{r['model']}", "baseline": f"pixels ({r['dataset']} input)"}.get(
            r["kind"], {"hIT": "human IT (fMRI)", "mIT": "monkey IT (cells)"}.get(r["model"], r["model"])
        )
        rows.append(
            [name, r["arch"], r["objective"], r["augmentation"], r["layer"]]
            + [_cell(r, m, pct) for m, _, pct in columns]
        )
    agree = (100 * ceiling["ooo_participant_lower"], 100 * ceiling["ooo_participant_upper"])
    ceil = {
        "rsa:behaviour": f"{ceiling['rsa_lower']:.3f} - {ceiling['rsa_upper']:.3f}",
        "ooo:zero-shot": f"{agree[0]:.1f} - {agree[1]:.1f}",
    }
    rows.append(
        [f"noise ceiling ({ceiling['participants']} participants; lower - upper)", "", "", "", ""]
        + [ceil.get(m, "") for m, _, _ in columns]
    )
    rows.append(
        ["chance", "", "", "", ""] + [("33.3" if pct and m != "things:normalised" else "0") for m, _, pct in columns]
    )
    return header, rows


def table_title(ceiling: Mapping[str, Any], level: float) -> str:
    return (
        f"Alignment with people's similarity judgments of 92 object images ({ceiling['participants']} "
        f"participants, Mur et al. 2013) and with IT (Kriegeskorte et al. 2008). RSA: Spearman correlation "
        f"of RDM upper triangles, averaged over participants (behaviour; noise ceiling "
        f"{ceiling['rsa_lower']:.3f} - {ceiling['rsa_upper']:.3f}). Odd-one-out: % of {ceiling['triplets']} "
        f"triplets of the group-mean RDM where the model's cosine similarity picks people's odd one out "
        f"(chance 33.3%; one participant against the others: {100 * ceiling['ooo_participant_lower']:.1f}%); "
        f"held-out: triplets of objects left out of the linear probe's training (cross-validated over "
        f"objects). {round(100 * level)}% CIs: image bootstrap."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" if i < 5 else "---:" for i in range(len(header))) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def latex_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str, label: str = "tab:rsa") -> str:
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        rf"\caption{{{tex_escape(title)}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{lllll" + "r" * (len(header) - 5) + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<!DOCTYPE html><meta charset='utf-8'><title>RSA and odd-one-out</title>"
        f"<style>td,th{{padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}</style>"
        f"<p>{html.escape(title)}</p><table><tr>{head}</tr>{body}</table>\n"
    )


def summary_text(wide: pd.DataFrame, ceiling: Mapping[str, Any]) -> str:
    """The stage's findings in plain text: the noise ceiling, the best and
    worst model per measure against it and against chance, the probe's gain,
    and the references."""
    lines = [
        f"Human similarity judgments of 92 object images: {ceiling['participants']} participants "
        f"(Mur et al. 2013), {ceiling['triplets']} odd-one-out triplets of the group-mean RDM.",
        f"Noise ceiling of RSA with behaviour (mean Spearman with the participants' RDMs): lower "
        f"{ceiling['rsa_lower']:.3f} [{ceiling['rsa_lower_ci'][0]:.3f}, {ceiling['rsa_lower_ci'][1]:.3f}], "
        f"upper {ceiling['rsa_upper']:.3f} [{ceiling['rsa_upper_ci'][0]:.3f}, {ceiling['rsa_upper_ci'][1]:.3f}].",
        f"Odd-one-out: chance {100 * ceiling['ooo_chance']:.1f}%; one participant picks the others' odd one "
        f"out in {100 * ceiling['ooo_participant_lower']:.1f}% of triplets "
        f"({100 * ceiling['ooo_participant_upper']:.1f}% against the mean of all).",
    ]
    models = wide.loc[wide["kind"] == "model"]
    for measure, what, pct in (
        ("rsa:behaviour", "RSA with behaviour", False),
        ("rsa:hIT", "RSA with human IT", False),
        ("ooo:zero-shot", "odd-one-out agreement (zero-shot)", True),
        ("things:zero-shot", "THINGS odd-one-out accuracy (zero-shot)", True),
        ("things:normalised", "THINGS noise-ceiling-normalised score", False),
    ):
        if measure not in models or models[measure].isna().all():
            continue
        m = models.dropna(subset=[measure])
        best, worst = m.loc[m[measure].idxmax()], m.loc[m[measure].idxmin()]
        fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.3f}")
        above = int((m[f"{measure}_lo"] > (CHANCE if pct else 0.0)).sum())
        lines.append(
            f"{what}: {len(m)} models from {fmt(worst[measure])} ({worst['dataset']}/{worst['model']}, "
            f"{worst['layer']}) to {fmt(best[measure])} ({best['dataset']}/{best['model']}, {best['layer']}); "
            f"{above} of {len(m)} with the 95% CI above {'chance' if pct else 'zero'}"
            + (
                "; none reaches the lower noise ceiling"
                if measure == "rsa:behaviour" and (m[measure] < ceiling["rsa_lower"]).all()
                else ""
            )
            + "."
        )
    if "ooo:probed" in models and not models["ooo:probed"].isna().all():
        gain = 100 * (models["ooo:probed"] - models["ooo:heldout-zero-shot"])
        lines.append(
            f"Linear probe (held-out objects): odd-one-out agreement changes by {gain.mean():+.1f} "
            f"percentage points on average (from {gain.min():+.1f} to {gain.max():+.1f}) against zero-shot "
            f"on the same triplets."
        )
    for r in wide.loc[wide["kind"] != "model"].to_dict("records"):
        name = {"baseline": f"pixels ({r['dataset']})"}.get(r["kind"], r["model"])
        parts = [f"RSA behaviour {r['rsa:behaviour']:.3f}"] if "rsa:behaviour" in r else []
        if r["model"] != "hIT" and "rsa:hIT" in r:
            parts.append(f"RSA hIT {r['rsa:hIT']:.3f}")
        if "ooo:zero-shot" in r:
            parts.append(f"odd-one-out {100 * r['ooo:zero-shot']:.1f}%")
        lines.append(f"Reference {name}: " + ", ".join(parts) + ".")
    return "\n".join(lines) + "\n"
