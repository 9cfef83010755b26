"""Rule simulate_judgments: the trials of every IRI set of one model,
answered by each configured population of simulated observers (in the schema
of real responses), with the decision noise from calibrate_observers."""

from pathlib import Path

import pandas as pd
import torch

from iriflow.io import atomic_path, read_json
from iriflow.judgments import build_trials, distances_for_trials, simulate_population
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
cfg = snakemake.params.judgments
observers = read_json(snakemake.input.calibration)  # name -> metric, sigma, sigma_spread, lapse, n_participants
root = Path(snakemake.params.root)
all_trials, all_responses = [], []
for path in map(Path, snakemake.input.iris):
    set_id = str(path.parent.relative_to(root))  # dataset/model/layer/loss/seed_type
    saved = torch.load(path, weights_only=False)
    trials = build_trials(
        len(saved["target_label"]),
        saved["target_label"].numpy(),
        saved["converged"].numpy(),
        alternatives=tuple(cfg["alternatives"]),
        matching_k=cfg["matching_k"],
        n_catch=cfg["n_catch"],
        seed=cfg["seed"],
        set_id=set_id,
    )
    images = {"iri": saved["iris"], "target": saved["targets"], "seed": saved["seeds"]}
    for name, obs in observers.items():
        if saved["loss_spec"]["kind"].startswith("adversarial") and obs["metric"] == saved["metric"]:
            ctx.log.warning(
                "%s: observer %s uses metric %s, the one these IRIs were optimised against", set_id, name, obs["metric"]
            )
        d = distances_for_trials(trials, images, obs["metric"])
        all_responses.append(
            simulate_population(
                trials,
                d,
                n_participants=obs["n_participants"],
                sigma=obs["sigma"],
                sigma_spread=obs["sigma_spread"],
                lapse=obs["lapse"],
                seed=cfg["seed"],
                observer=f"simulated:{name}",
            )
        )
    ctx.log.info(
        "%s: %d trials (%d IRIs not converged, no trials), %d observer populations",
        set_id,
        len(trials),
        trials.attrs.get("n_not_converged", 0),
        len(observers),
    )
    all_trials.append(trials)
with atomic_path(snakemake.output.trials) as tmp:
    pd.concat(all_trials, ignore_index=True).to_csv(tmp, index=False)
with atomic_path(snakemake.output.responses) as tmp:
    pd.concat(all_responses, ignore_index=True).to_csv(tmp, index=False)
