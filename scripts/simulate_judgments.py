"""Rule simulate_judgments: the trials of every IRI set of one model,
answered by a seeded population of simulated observers (in the schema of
real responses)."""
from pathlib import Path

import pandas as pd
import torch

from iriflow.io import atomic_path
from iriflow.judgments import build_trials, distances_for_trials, simulate_population
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
cfg = snakemake.params.judgments
sim = cfg["observers"]["simulated"]
root = Path(snakemake.params.root)
all_trials, all_responses = [], []
for path in map(Path, snakemake.input.iris):
    set_id = str(path.parent.relative_to(root))  # dataset/model/layer/loss/seed_type
    saved = torch.load(path, weights_only=False)
    trials = build_trials(len(saved["target_label"]), saved["target_label"].numpy(), saved["converged"].numpy(),
                          alternatives=tuple(cfg["alternatives"]), matching_k=cfg["matching_k"],
                          n_catch=cfg["n_catch"], seed=cfg["seed"], set_id=set_id)
    images = {"iri": saved["iris"], "target": saved["targets"], "seed": saved["seeds"]}
    d = distances_for_trials(trials, images, sim["metric"])
    responses = simulate_population(trials, d, n_participants=sim["n_participants"], sigma=sim["sigma"],
                                    sigma_spread=sim["sigma_spread"], lapse=sim["lapse"], seed=cfg["seed"],
                                    observer=f"simulated:{sim['metric']}")
    if saved["loss_spec"]["kind"].startswith("adversarial") and sim["metric"] == saved["metric"]:
        ctx.log.warning("%s: the observer metric %s is the one these IRIs were optimised against",
                        set_id, sim["metric"])
    ctx.log.info("%s: %d trials (%d IRIs not converged, no trials), %d responses", set_id, len(trials),
                 trials.attrs.get("n_not_converged", 0), len(responses))
    all_trials.append(trials)
    all_responses.append(responses)
with atomic_path(snakemake.output.trials) as tmp:
    pd.concat(all_trials, ignore_index=True).to_csv(tmp, index=False)
with atomic_path(snakemake.output.responses) as tmp:
    pd.concat(all_responses, ignore_index=True).to_csv(tmp, index=False)
