"""Judgments of IRIs: trials, simulated observers and observer validation
(scoring the answers: iriflow.scoring).

Trials table (``build_trials``; columns ``TRIAL_COLUMNS``, one row per
answer a participant gives):

- ``set_id`` (str): the IRI set (model, layer, IRI loss, seed type).
- ``trial_id`` (str): unique id, ``<set_id>/2afc-<alternative>/<i>``,
  ``<set_id>/matching/<group>/<i>``, ``<set_id>/catch/<n>`` or
  ``<set_id>/feature-2afc/<f>/<j>``.
- ``kind`` (str): ``"2afc"``, ``"matching"``, ``"catch"`` or
  ``"feature-2afc"``.
- ``alternative`` (str): for 2afc the non-target option, ``"seed"`` (the
  IRI's own seed) or ``"other-target"`` (a target of another class); for
  feature-2afc ``"bottom"``; ``""`` for matching and catch trials.
- ``target`` (int64): index i of the target (and of its IRI) in the set.
- ``target_label`` (int64): the class of target i.
- ``group`` (int64): the matching trial (one screen showing k targets and
  their k IRIs) the row belongs to; -1 for other kinds.
- ``query`` (str): the image judged: ``"iri:<i>"``; ``"target:<i>"`` for
  catch trials (the answer is then obvious).
- ``options`` (str): the images to choose from, ``'|'``-separated in display
  order, e.g. ``"seed:3|target:3"``. All rows of a matching group share the
  same options (the group's k targets); each row asks for one IRI's target.
- ``n_options`` (int64): the number of options.
- ``correct`` (int64): index into ``options`` of the target (correct answer).

Image references are ``"iri:<i>"``, ``"target:<i>"``, ``"seed:<i>"``: index i
into the set's ``iris``, ``targets`` and ``seeds`` tensors. Non-converged IRIs
get no trials; the table's ``attrs["not_converged"]`` lists them (and
``attrs["n_not_converged"]`` counts them) for the caller to report.

Feature-2afc trials (Borowski et al. 2021, Zimmermann et al. 2021) belong to
the feature-visualisation sets of iriflow.engstrom (set id part
``feature-vis``): given the visualisation of a unit (query ``iri:<f>``),
which of two test images activates the unit more, one of its n
top-activating images (``top:<f*n+j>``, correct) or one of its n
bottom-activating ones (``bottom:<f*n+j'>``)? Each top image of a unit is
paired once with a bottom image (a seeded permutation); ``target`` is the
unit's index f in the set. Visualisations that do not activate their unit
more than every test image did not converge and get no trials; these sets
have no matching or catch trials. ``set_trials`` picks the builder by the
set id.

Responses follow iriflow.responses.RESPONSE_COLUMNS, for simulated and real
observers alike.

Simulated observer (Thurstonian): option k evokes an internal distance
D(q, o_k) + e_k, e_k ~ N(0, sigma^2 / 2) independent, and the observer picks
the smallest; with probability ``lapse`` it instead guesses uniformly. For
K = 2 this is exactly P(A) = lapse/2 + (1-lapse) Phi((D(q,B) - D(q,A)) / sigma).
A metric's units are arbitrary, so sigma is calibrated (``calibrate_sigma``)
from one point of a psychometric function: P(target) = p_correct on
target-in-pixel-noise trials at a given SNR. ``validate_metric`` gives a
metric's curves on constructed trials with known answers; a metric whose
curves go the wrong way (it prefers the wrong image) must not be an
observer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq
from scipy.special import ndtr
from torch import Tensor

from .iriset import PROCEDURES, IRISet
from .metrics import get_metric
from .responses import as_responses

TRIAL_COLUMNS = (
    "set_id",
    "trial_id",
    "kind",
    "alternative",
    "target",
    "target_label",
    "group",
    "query",
    "options",
    "n_options",
    "correct",
)
TRIAL_DTYPES = {
    "set_id": "str",
    "trial_id": "str",
    "kind": "str",
    "alternative": "str",
    "target": "int64",
    "target_label": "int64",
    "group": "int64",
    "query": "str",
    "options": "str",
    "n_options": "int64",
    "correct": "int64",
}
KINDS = ("2afc", "matching", "catch", "feature-2afc")
ALTERNATIVES = ("seed", "other-target")
FEATURE_SET = PROCEDURES["features"][0]  # the loss part of a feature-visualisation set's id
FEATURE_KIND = "feature-2afc"
FEATURE_ALTERNATIVE = "bottom"
METRIC_BATCH = 256
# Gauss-Hermite nodes/weights for E[f(Z)], Z ~ N(0,1); the integrand's scale in Z is 1.
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W / _GH_W.sum()


# --- trials --------------------------------------------------------------------


def _other_class(rng: np.random.Generator, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each i in ``idx``, a uniformly drawn target j with another label."""
    other = labels[None, :] != labels[idx][:, None]
    if not other.any(1).all():
        raise ValueError("other-target options need targets of at least two classes")
    return np.where(other, rng.random(other.shape), -1.0).argmax(1)


def _two_option_rows(
    rng: np.random.Generator,
    set_id: str,
    kind: str,
    alternative: str,
    targets: np.ndarray,
    queries: list[str],
    others: list[str],
    ids: list[str],
    labels: np.ndarray,
    rights: list[str] | None = None,
) -> pd.DataFrame:
    """Rows of two-option trials with the right option's side balanced and
    shuffled; the right options are the targets unless ``rights`` names them."""
    correct = rng.permutation(np.arange(len(targets)) % 2)
    tgt = [f"target:{i}" for i in targets] if rights is None else rights
    options = [f"{t}|{o}" if c == 0 else f"{o}|{t}" for t, o, c in zip(tgt, others, correct)]
    return pd.DataFrame(
        {
            "set_id": set_id,
            "trial_id": ids,
            "kind": kind,
            "alternative": alternative,
            "target": targets,
            "target_label": labels[targets],
            "group": -1,
            "query": queries,
            "options": options,
            "n_options": 2,
            "correct": correct,
        }
    )


def _matching_groups(rng: np.random.Generator, labels: np.ndarray, pool: np.ndarray, k: int) -> list[np.ndarray]:
    """Disjoint groups of k members of ``pool`` with k different labels; as
    many as possible (greedy on the classes with most members left)."""
    stacks = {c: list(rng.permutation(pool[labels[pool] == c])) for c in np.unique(labels[pool])}
    groups = []
    while sum(1 for s in stacks.values() if s) >= k:
        classes = [c for c in stacks if stacks[c]]
        order = np.lexsort((rng.random(len(classes)), [-len(stacks[c]) for c in classes]))
        groups.append(np.array([stacks[classes[j]].pop() for j in order[:k]]))
    return groups


def build_trials(
    n_targets: int,
    labels: Sequence[int] | np.ndarray,
    converged: Sequence[bool] | np.ndarray,
    *,
    alternatives: Sequence[str] = ALTERNATIVES,
    matching_k: int = 4,
    n_catch: int = 4,
    seed: int = 0,
    set_id: str = "set",
) -> pd.DataFrame:
    """The trials table of one IRI set (schema in the module docstring).

    2afc: one trial per converged IRI and alternative kind. matching: disjoint
    groups of ``matching_k`` converged IRIs of different classes (0 or 1
    disables). catch: ``n_catch`` trials whose query is a target itself."""
    labels = np.asarray(labels, dtype=np.int64)
    converged = np.asarray(converged, dtype=bool)
    if labels.shape != (n_targets,) or converged.shape != (n_targets,):
        raise ValueError(f"labels {labels.shape} and converged {converged.shape} must both have shape ({n_targets},)")
    unknown = sorted(set(alternatives) - set(ALTERNATIVES))
    if unknown:
        raise ValueError(f"unknown 2AFC alternatives {unknown}; known: {list(ALTERNATIVES)}")
    rng = np.random.default_rng(seed)
    ok = np.flatnonzero(converged)
    parts = []
    for alt in alternatives:
        others = [f"seed:{i}" for i in ok] if alt == "seed" else [f"target:{j}" for j in _other_class(rng, labels, ok)]
        parts.append(
            _two_option_rows(
                rng,
                set_id,
                "2afc",
                alt,
                ok,
                [f"iri:{i}" for i in ok],
                others,
                [f"{set_id}/2afc-{alt}/{i}" for i in ok],
                labels,
            )
        )
    if matching_k >= 2:
        for g, members in enumerate(_matching_groups(rng, labels, ok, matching_k)):
            shown = rng.permutation(members)  # display order of the group's targets
            asked = rng.permutation(members)  # order in which its IRIs are asked
            position = {t: p for p, t in enumerate(shown)}
            parts.append(
                pd.DataFrame(
                    {
                        "set_id": set_id,
                        "trial_id": [f"{set_id}/matching/{g}/{i}" for i in asked],
                        "kind": "matching",
                        "alternative": "",
                        "target": asked,
                        "target_label": labels[asked],
                        "group": g,
                        "query": [f"iri:{i}" for i in asked],
                        "options": "|".join(f"target:{t}" for t in shown),
                        "n_options": matching_k,
                        "correct": [position[i] for i in asked],
                    }
                )
            )
    if n_catch > 0:
        idx = np.sort(rng.choice(n_targets, n_catch, replace=n_catch > n_targets))
        others = [f"target:{j}" for j in _other_class(rng, labels, idx)]
        parts.append(
            _two_option_rows(
                rng,
                set_id,
                "catch",
                "",
                idx,
                [f"target:{i}" for i in idx],
                others,
                [f"{set_id}/catch/{c}" for c in range(n_catch)],
                labels,
            )
        )
    trials = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in TRIAL_COLUMNS})
    trials = trials.loc[:, list(TRIAL_COLUMNS)].astype(TRIAL_DTYPES)
    trials.attrs["not_converged"] = np.flatnonzero(~converged).tolist()
    trials.attrs["n_not_converged"] = int((~converged).sum())
    return trials


def split_options(trials: pd.DataFrame) -> list[list[str]]:
    """Each trial's option references, in display order."""
    return trials["options"].str.split("|").tolist()


# --- simulated observers -------------------------------------------------------


def _thurstone(d: np.ndarray, sigma: float) -> np.ndarray:
    """P(option k has the smallest of D_k + e_k), e_k ~ N(0, sigma^2/2) iid:
    E_Z[prod_{j != k} Phi((d_j - d_k)/s - Z)], s = sigma/sqrt(2), by quadrature."""
    t, k = d.shape
    s = sigma / np.sqrt(2.0)
    out = np.empty_like(d)
    off = ~np.eye(k, dtype=bool)
    step = max(1, 2**22 // (k * k * len(_GH_X)))
    for a in range(0, t, step):
        z = (d[a : a + step, None, :] - d[a : a + step, :, None]) / s  # [t, k, j] = (d_j - d_k)/s
        cdf = np.where(off[None, :, :, None], ndtr(z[..., None] - _GH_X), 1.0)
        out[a : a + step] = cdf.prod(2) @ _GH_W
    return out / out.sum(1, keepdims=True)


def observer_choice_probs(d_options: np.ndarray, sigma: float, lapse: float) -> np.ndarray:
    """Choice probabilities [T, K] from distances D(query, option_k) [T, K].

    K = 2: P(A) = lapse/2 + (1 - lapse) Phi((D_B - D_A)/sigma). K > 2: the
    Thurstonian rule of the module docstring, lapse spread over the K options.
    Rows with fewer options are NaN-padded at the end; padded options get 0."""
    d = np.asarray(d_options, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"d_options must be [T, K], got shape {d.shape}")
    if not sigma > 0 or not 0 <= lapse <= 1:
        raise ValueError(f"need sigma > 0 and 0 <= lapse <= 1, got sigma={sigma}, lapse={lapse}")
    valid = ~np.isnan(d)
    n = valid.sum(1)
    if (valid != (np.arange(d.shape[1]) < n[:, None])).any():
        raise ValueError("NaN padding must come after a row's options")
    p = np.zeros_like(d)
    for k in np.unique(n):
        rows = n == k
        dk = d[rows, :k]
        if k == 1:
            core = np.ones_like(dk)
        elif k == 2:
            a = ndtr((dk[:, 1] - dk[:, 0]) / sigma)
            core = np.stack([a, 1.0 - a], 1)
        else:
            core = _thurstone(dk, sigma)
        p[rows, :k] = lapse / k + (1.0 - lapse) * core
    return p


def _metric_batched(metric: str, x: Tensor, y: Tensor, batch: int = METRIC_BATCH) -> np.ndarray:
    fn = get_metric(metric)
    with torch.no_grad():
        return (
            torch.cat([fn(x[a : a + batch], y[a : a + batch]).flatten() for a in range(0, len(x), batch)])
            .double()
            .cpu()
            .numpy()
        )


def _gather(refs: Sequence[str], images: Mapping[str, Tensor | np.ndarray]) -> Tensor:
    """Stack the images (tensors or arrays) named by references like "iri:3"."""
    names = list(images)
    offsets = dict(zip(names, np.cumsum([0] + [len(images[k]) for k in names])[:-1]))
    kind, _, idx = np.char.partition(np.asarray(refs, dtype=str), ":").T
    unknown = sorted(set(kind) - set(names))
    if unknown:
        raise KeyError(f"image references of kinds {unknown} but images has only {names}")
    index = np.array([offsets[k] for k in kind], dtype=np.int64) + idx.astype(np.int64)
    bank = torch.cat([torch.as_tensor(images[k]) for k in names])
    return bank[torch.from_numpy(index)]


def distances_for_trials(trials: pd.DataFrame, images: Mapping[str, Tensor | np.ndarray], metric: str) -> np.ndarray:
    """D(query, option_k) [T, K_max] (NaN beyond a row's options). Each
    distinct (query, option) pair is computed once, in batched metric calls
    (an IRI meets its target in several trial kinds). ``images`` maps "iri",
    "target", "seed" to [N,C,H,W] images in [0,1] (tensors or arrays;
    IRISet.images())."""
    opts = split_options(trials)
    n = np.array([len(o) for o in opts], dtype=np.int64)
    d = np.full((len(trials), n.max(initial=0)), np.nan)
    rows = np.repeat(np.arange(len(trials)), n)
    cols = np.concatenate([np.arange(k) for k in n]) if len(n) else np.zeros(0, dtype=np.int64)
    queries = trials["query"].to_numpy(dtype=str)[rows]
    options = np.array([ref for o in opts for ref in o], dtype=str)
    keys = np.char.add(np.char.add(queries, "|"), options)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(keys):
        dist = _metric_batched(metric, _gather(queries[first], images), _gather(options[first], images))
        d[rows, cols] = dist[inverse]
    return d


def simulate_population(
    trials: pd.DataFrame,
    d: np.ndarray,
    *,
    n_participants: int,
    sigma: float,
    sigma_spread: float,
    lapse: float,
    seed: int,
    observer: str = "simulated",
) -> pd.DataFrame:
    """Responses of ``n_participants`` simulated observers to every trial.
    Participant p has noise sigma * exp(sigma_spread * N(0,1)) and samples
    each answer from ``observer_choice_probs``. Participant ids are
    ``<observer>/p<NNN>``; rt_ms is NaN."""
    rng = np.random.default_rng(seed)
    sigmas = sigma * np.exp(sigma_spread * rng.standard_normal(n_participants))
    u = rng.random((n_participants, len(trials)))
    resp = np.stack(
        [(u[p, :, None] > np.cumsum(observer_choice_probs(d, s, lapse), 1)).sum(1) for p, s in enumerate(sigmas)]
    )
    resp = np.minimum(resp, trials["n_options"].to_numpy() - 1)  # rounding at the top of the cdf
    t = len(trials)
    return as_responses(
        pd.DataFrame(
            {
                "participant": np.repeat([f"{observer}/p{p:03d}" for p in range(n_participants)], t),
                "set_id": np.tile(trials["set_id"].to_numpy(), n_participants),
                "trial_id": np.tile(trials["trial_id"].to_numpy(), n_participants),
                "response": resp.ravel(),
                "correct": (resp == trials["correct"].to_numpy()).ravel(),
                "rt_ms": np.nan,
                "observer": observer,
            }
        )
    )


def feature_trials(iri_set: IRISet, *, seed: int = 0, set_id: str | None = None) -> pd.DataFrame:
    """The feature-2afc trials of a feature-visualisation set (module
    docstring): one per top-activating image of every converged unit."""
    set_id = str(iri_set.id) if set_id is None else set_id
    n = iri_set.extra["top_index"].shape[1]
    ok = np.flatnonzero(iri_set.converged)
    rng = np.random.default_rng(seed)
    unit = np.repeat(ok, n)
    j = np.tile(np.arange(n), len(ok))
    partner = np.concatenate([rng.permutation(n) for _ in ok]) if len(ok) else np.zeros(0, dtype=np.int64)
    trials = _two_option_rows(
        rng,
        set_id,
        FEATURE_KIND,
        FEATURE_ALTERNATIVE,
        unit,
        [f"iri:{f}" for f in unit],
        [f"bottom:{f * n + p}" for f, p in zip(unit, partner)],
        [f"{set_id}/{FEATURE_KIND}/{f}/{i}" for f, i in zip(unit, j)],
        np.asarray(iri_set.target_label, dtype=np.int64),
        rights=[f"top:{f * n + i}" for f, i in zip(unit, j)],
    ).astype(TRIAL_DTYPES)
    trials.attrs["not_converged"] = np.flatnonzero(~iri_set.converged).tolist()
    trials.attrs["n_not_converged"] = int((~iri_set.converged).sum())
    return trials


def set_trials(iri_set: IRISet, cfg: Mapping, set_id: str | None = None) -> pd.DataFrame:
    """The trials table of an IRI set under the config's ``judgments`` section
    (alternatives, matching_k, n_catch, seed); ``set_id`` defaults to the set's
    id. Feature-visualisation sets get feature-2afc trials instead."""
    if iri_set.id.loss == FEATURE_SET:
        return feature_trials(iri_set, seed=cfg["seed"], set_id=set_id)
    return build_trials(
        len(iri_set),
        iri_set.target_label,
        iri_set.converged,
        alternatives=tuple(cfg["alternatives"]),
        matching_k=cfg["matching_k"],
        n_catch=cfg["n_catch"],
        seed=cfg["seed"],
        set_id=str(iri_set.id) if set_id is None else set_id,
    )


def simulate_observers(
    trials: pd.DataFrame, images: Mapping[str, Tensor | np.ndarray], observers: Mapping[str, Mapping], seed: int
) -> list[pd.DataFrame]:
    """The responses of every calibrated population of simulated observers
    (calibrate_observers: name -> metric, sigma, sigma_spread, lapse,
    n_participants) to ``trials``, as ``simulated:<name>``."""
    out = []
    for name, obs in observers.items():
        d = distances_for_trials(trials, images, obs["metric"])
        out.append(
            simulate_population(
                trials,
                d,
                n_participants=obs["n_participants"],
                sigma=obs["sigma"],
                sigma_spread=obs["sigma_spread"],
                lapse=obs["lapse"],
                seed=seed,
                observer=f"simulated:{name}",
            )
        )
    return out


# --- observer validation -------------------------------------------------------


def _constructed(
    targets: Tensor, other_images: Tensor, kind: str, levels: Sequence[float], seed: int
) -> tuple[Tensor, Tensor, Tensor, np.ndarray]:
    """Queries of constructed trials, one per (level, target), level-major,
    with their target and other option and the levels' SNR in dB."""
    if other_images.shape != targets.shape:
        raise ValueError(f"other_images {tuple(other_images.shape)} must match targets {tuple(targets.shape)}")
    lv = torch.as_tensor(np.asarray(levels, dtype=np.float64), dtype=targets.dtype)
    t = targets.repeat(len(lv), 1, 1, 1)
    o = other_images.repeat(len(lv), 1, 1, 1)
    w = lv.repeat_interleave(len(targets)).view(-1, 1, 1, 1)
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        q = (t + w * torch.randn(t.shape, generator=g, dtype=t.dtype)).clamp(0, 1)
        with np.errstate(divide="ignore"):
            snr = 10 * np.log10(target_power(targets) / np.asarray(levels, dtype=np.float64) ** 2)
    elif kind == "blend":
        q = (1 - w) * t + w * o
        snr = np.full(len(lv), np.nan)
    else:
        raise ValueError(f"kind must be 'noise' or 'blend', got {kind!r}")
    return q, t, o, snr


def target_power(targets: Tensor) -> float:
    """Mean pixel variance of the targets: the signal power of SNR in dB."""
    return targets.flatten(1).var(1).mean().item()


def noise_level(targets: Tensor, snr_db: float) -> float:
    """Standard deviation of pixel noise giving ``snr_db`` on these targets."""
    return float(np.sqrt(target_power(targets) / 10 ** (snr_db / 10)))


def psychometric_curve(
    targets: Tensor,
    metric: str,
    *,
    kind: str = "noise",
    levels: Sequence[float],
    other_images: Tensor,
    sigma: float | None = None,
    lapse: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A metric observer on constructed 2AFC trials with known answers:
    target vs ``other_images`` (one per target) as options.

    kind="noise": query = clamp(target + level * N(0,1)); the answer is the
    target at every level (``snr_db`` = 10 log10(pixel variance of the targets
    / level^2)). kind="blend": query = (1 - level) * target + level * other;
    the answer is the target for level < 0.5, the other image above.
    Returns one row per level: ``p_target`` (share of trials with
    D(q, target) < D(q, other), ties counting half), mean distances, and
    ``p_target_model`` (mean observer_choice_probs; NaN without sigma)."""
    q, t, o, snr = _constructed(targets, other_images, kind, levels, seed)
    n = len(targets)
    d = np.stack([_metric_batched(metric, q, t), _metric_batched(metric, q, o)], 1)
    wins = (d[:, 0] < d[:, 1]) + 0.5 * (d[:, 0] == d[:, 1])
    model = observer_choice_probs(d, sigma, lapse)[:, 0] if sigma is not None else np.full(len(d), np.nan)

    def per(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(levels), n).mean(1)

    return pd.DataFrame(
        {
            "kind": kind,
            "metric": metric,
            "level": np.asarray(levels, dtype=np.float64),
            "snr_db": snr,
            "n": n,
            "p_target": per(wins),
            "p_target_model": per(model),
            "d_target": per(d[:, 0]),
            "d_other": per(d[:, 1]),
        }
    )


def calibrate_sigma(
    targets: Tensor,
    other_images: Tensor,
    metric: str,
    *,
    snr_db: float,
    p_correct: float,
    repeats: int = 10,
    seed: int = 0,
) -> float:
    """The decision noise sigma (in units of ``metric``) at which the observer
    (no lapses) chooses the target on ``p_correct`` of target-in-noise 2AFC
    trials at ``snr_db`` (options: the target and ``other_images``).

    This anchors a metric's arbitrary units to one point of a psychometric
    function, e.g. a human 75% threshold measured in a pilot. Raises
    ValueError when even a noise-free observer with this metric stays below
    ``p_correct`` there: the metric is then blinder than the anchor demands."""
    if not 0.5 < p_correct < 1:
        raise ValueError(f"p_correct must lie in (0.5, 1), got {p_correct}")
    level = noise_level(targets, snr_db)
    q, t, o, _ = _constructed(
        targets.repeat(repeats, 1, 1, 1), other_images.repeat(repeats, 1, 1, 1), "noise", [level], seed
    )
    diff = _metric_batched(metric, q, o) - _metric_batched(metric, q, t)  # > 0: target closer
    ceiling = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    if ceiling <= p_correct:
        raise ValueError(
            f"metric {metric!r}: even without decision noise the observer chooses the target on only "
            f"{ceiling:.3f} of trials at {snr_db} dB, not {p_correct}; anchor it at a higher snr_db "
            f"or a lower p_correct"
        )
    scale = float(np.median(np.abs(diff[diff != 0]))) if (diff != 0).any() else 1.0

    def excess(log_sigma: float) -> float:
        return float(ndtr(diff / np.exp(log_sigma)).mean()) - p_correct

    lo, hi = np.log(scale) - 30.0, np.log(scale) + 30.0
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-10)))


def other_class_images(targets: Tensor, labels: Sequence[int] | np.ndarray, seed: int = 0) -> Tensor:
    """For each target, a (seeded) target of another class: the wrong option
    of constructed trials, as in the IRI trials' "other-target" alternative."""
    labels = np.asarray(labels, dtype=np.int64)
    return targets[torch.from_numpy(_other_class(np.random.default_rng(seed), labels, np.arange(len(labels))))]


def validate_metric(
    targets: Tensor,
    labels: Sequence[int] | np.ndarray,
    metric: str,
    *,
    snr_db: Sequence[float],
    blend: Sequence[float],
    repeats: int = 10,
    sigma: float | None = None,
    lapse: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Psychometric curves of one metric on three kinds of constructed trials
    with known answers (column ``trial``):

    - ``noise``: target in pixel noise at each SNR vs another class's target
      (correct: the target at every level);
    - ``blend-other``: target blended with another class's target;
    - ``blend-noise``: target blended with uniform noise, the noise image as
      the other option (catches metrics that follow noise texture, the bias
      of IRIs from noise seeds).

    For blends the target is the right answer below a weight of 0.5."""
    others = other_class_images(targets, labels, seed).repeat(repeats, 1, 1, 1)
    many = targets.repeat(repeats, 1, 1, 1)
    noise_img = torch.rand(many.shape, generator=torch.Generator().manual_seed(seed), dtype=many.dtype)
    levels = [noise_level(targets, s) for s in snr_db]
    parts = [
        psychometric_curve(
            many, metric, kind="noise", levels=levels, other_images=others, sigma=sigma, lapse=lapse, seed=seed
        ).assign(trial="noise"),
        psychometric_curve(
            many, metric, kind="blend", levels=blend, other_images=others, sigma=sigma, lapse=lapse
        ).assign(trial="blend-other"),
        psychometric_curve(
            many, metric, kind="blend", levels=blend, other_images=noise_img, sigma=sigma, lapse=lapse
        ).assign(trial="blend-noise"),
    ]
    return pd.concat(parts, ignore_index=True)


# --- observer validity per trial kind and seed type -------------------------------

VALIDITY_COLUMNS = (
    "observer",
    "metric",
    "measure",
    "kind",
    "alternative",
    "seed_type",
    "n_trials",
    "chance",
    "p_correct",
    "ci_lo",
    "ci_hi",
    "threshold",
    "passed",
    "reason",
)


def pseudo_iris(targets: Tensor, seeds: Tensor, weight: float) -> Tensor:
    """Target-dominant stand-ins for IRIs: (1 - weight) * target + weight *
    seed. For weight < 0.5 the target is the right answer of every trial
    built on them, whichever seed type left its trace."""
    if not 0 <= weight < 0.5:
        raise ValueError(f"the seed's weight must lie in [0, 0.5), got {weight}")
    return (1 - weight) * targets + weight * seeds


def validity_trials(
    targets: Tensor,
    labels: Sequence[int] | np.ndarray,
    seeds: Tensor,
    *,
    kind: str,
    alternatives: Sequence[str],
    matching_k: int,
    weights: Sequence[float],
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Tensor]]:
    """Constructed trials with known answers for one seed type, in the form
    of the real ones (``build_trials``): every query is a pseudo-IRI
    (``pseudo_iris``) of its target at each seed weight, so the target is
    always right. ``kind`` "iri" gives the 2afc trials of ``alternatives``
    and the matching trials; "feature-2afc" gives two-option trials against
    another class's target, relabelled as feature-2afc (a visualisation from
    ``seeds`` should resemble what activates its unit, not another class).
    Returns the trials (one block per weight, target indices offset by
    block) and their images."""
    n = len(targets)
    labels = np.tile(np.asarray(labels, dtype=np.int64), len(weights))
    iri = torch.cat([pseudo_iris(targets, seeds, w) for w in weights])
    feature = kind == FEATURE_KIND
    trials = build_trials(
        n * len(weights),
        labels,
        np.ones(n * len(weights), dtype=bool),
        alternatives=("other-target",) if feature else tuple(alternatives),
        matching_k=0 if feature else matching_k,
        n_catch=0,
        seed=seed,
        set_id="validity",
    )
    if feature:
        trials = trials.assign(kind=FEATURE_KIND, alternative=FEATURE_ALTERNATIVE)
    images = {"iri": iri, "target": targets.repeat(len(weights), 1, 1, 1), "seed": seeds.repeat(len(weights), 1, 1, 1)}
    return trials, images


def check_observer(
    trials: pd.DataFrame,
    images: Mapping[str, Tensor],
    obs: Mapping,
    *,
    margin_pp: float,
    level: float,
) -> pd.DataFrame:
    """One calibrated observer (metric, sigma, lapse) on constructed trials:
    per measure, its expected proportion correct (mean choice probability of
    the right option), a t-interval over the targets, and whether it passes:
    the interval's lower bound lies ``margin_pp`` percentage points above
    chance."""
    from scipy import stats as sps

    d = distances_for_trials(trials, images, obs["metric"])
    p = observer_choice_probs(d, obs["sigma"], obs["lapse"])[np.arange(len(trials)), trials["correct"].to_numpy()]
    rows = []
    frame = trials.assign(p=p)
    for (kind, alt), g in frame.groupby(["kind", "alternative"], sort=True):
        per_target = g.groupby("target")["p"].mean().to_numpy()
        m = len(per_target)
        mean = float(per_target.mean())
        half = float(sps.t.ppf(0.5 + level / 2, m - 1) * per_target.std(ddof=1) / np.sqrt(m)) if m > 1 else np.inf
        chance = float((1.0 / g["n_options"]).mean())
        threshold = chance + margin_pp / 100
        passed = mean - half > threshold
        rows.append(
            {
                "measure": "matching" if kind == "matching" else f"{kind}:{alt}",
                "kind": kind,
                "alternative": alt,
                "n_trials": len(g),
                "chance": chance,
                "p_correct": mean,
                "ci_lo": mean - half,
                "ci_hi": mean + half,
                "threshold": threshold,
                "passed": bool(passed),
                "reason": (
                    f"{100 * mean:.1f}% correct [{100 * (mean - half):.1f}, {100 * (mean + half):.1f}] "
                    f"{'above' if passed else 'not above'} chance + {margin_pp:g} pp ({100 * threshold:.1f}%)"
                ),
            }
        )
    return pd.DataFrame(rows)


def observer_validity(
    targets: Tensor,
    labels: Sequence[int] | np.ndarray,
    seeds: Mapping[str, Tensor],
    observers: Mapping[str, Mapping],
    *,
    seed_types: Sequence[str],
    alternatives: Sequence[str],
    matching_k: int,
    weights: Sequence[float],
    margin_pp: float,
    level: float = 0.95,
    feature_seed_type: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The validity table (``VALIDITY_COLUMNS``): every calibrated observer
    (calibrate_observers: name -> metric, sigma, lapse) on the constructed
    trials of ``validity_trials`` for every seed type of ``seed_types`` (IRI
    trial kinds; ``seeds`` maps a seed type to its seeds) and, when ``feature_seed_type`` is given, feature-2afc trials
    from seeds of that type. An observer is used for a (measure, seed type)
    only where ``passed``."""
    parts = []
    blocks = [("iri", s) for s in seed_types] + ([(FEATURE_KIND, feature_seed_type)] if feature_seed_type else [])
    for kind, seed_type in blocks:
        trials, images = validity_trials(
            targets,
            labels,
            seeds[seed_type],
            kind=kind,
            alternatives=alternatives,
            matching_k=matching_k,
            weights=weights,
            seed=seed,
        )
        for name, obs in observers.items():
            parts.append(
                check_observer(trials, images, obs, margin_pp=margin_pp, level=level).assign(
                    observer=f"simulated:{name}", metric=obs["metric"], seed_type=seed_type
                )
            )
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(VALIDITY_COLUMNS))
    return table.loc[:, list(VALIDITY_COLUMNS)]
