"""Simulated answers with known effects, for the tests of the statistics and
the findings: a crossed design in which every participant answers every IRI
of every set once, with participant and IRI random intercepts (answers
cluster in both, as in a real experiment)."""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def simulate_answers(
    sets: Sequence[tuple[Mapping[str, str], float]],
    seed: int,
    *,
    n_participants: int = 20,
    n_items: int = 20,
    sd_participant: float = 0.5,
    sd_item: float = 1.0,
    chance: float = 0.5,
) -> pd.DataFrame:
    """One row per answer of ``n_participants`` participants to the
    ``n_items`` IRIs of each set. ``sets``: (columns, logit) per set, with
    logit P(correct) = logit + u_participant + v_item, u ~ N(0,
    sd_participant), v ~ N(0, sd_item); the columns (set_id and model among
    them) are copied onto the set's answers. Columns: correct (0/1),
    participant, item (``<set_id>#<i>``), chance and the set's columns."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, sd_participant, n_participants)
    p_idx, i_idx = np.meshgrid(np.arange(n_participants), np.arange(n_items), indexing="ij")
    parts = []
    for columns, logit in sets:
        v = rng.normal(0, sd_item, n_items)
        eta = logit + u[:, None] + v[None, :]
        y = rng.random(eta.shape) < 1 / (1 + np.exp(-eta))
        parts.append(
            pd.DataFrame(
                {
                    "correct": y.ravel().astype(np.int8),
                    "participant": [f"p{p}" for p in p_idx.ravel()],
                    "item": [f"{columns['set_id']}#{i}" for i in i_idx.ravel()],
                    "chance": chance,
                    **columns,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def rate_in_binomial_ci(k: int, n: int, rate: float, level: float = 0.99) -> tuple[bool, tuple[float, float]]:
    """Whether ``rate`` lies in the exact (Clopper-Pearson) ``level`` CI of
    k successes in n trials, and that interval."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(level, method="exact")
    return ci.low <= rate <= ci.high, (ci.low, ci.high)
