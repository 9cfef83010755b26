"""Rule checkpoint_judgments: trials for the IRIs of every SimCLR snapshot,
answered by the same simulated observer populations as the main IRI sets
(calibrated by calibrate_observers), screened on catch trials, and the 2AFC
proxy of each. Set ids are <dataset>/<model>/<layer>/<loss>/<seed_type>/epochNNNN."""

from pathlib import Path

import pandas as pd
import torch

from iriflow.io import atomic_path, read_json
from iriflow.judgments import build_trials, distances_for_trials, exclude_failed_catch, simulate_population
from iriflow.proxies import proxy_2afc, summarise_proxy
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
cfg = snakemake.params.judgments
calibrations = {Path(p).parent.name: read_json(p) for p in snakemake.input.calibration}  # dataset -> observers
all_trials, all_responses, proxies = [], [], []
for set_id, path in zip(snakemake.params.sets, snakemake.input.iris):
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
    for name, obs in calibrations[set_id.split("/")[0]].items():
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
    for metric in snakemake.params.proxy_metrics:
        proxies.append(proxy_2afc(trials, images, metric))
    ctx.log.info(
        "%s: %d trials, %d of %d IRIs converged",
        set_id,
        len(trials),
        int(saved["converged"].sum()),
        len(saved["converged"]),
    )
    all_trials.append(trials)
trials = pd.concat(all_trials, ignore_index=True)
responses = pd.concat(all_responses, ignore_index=True)
kept, report = exclude_failed_catch(responses, trials, snakemake.params.min_catch_correct)
ctx.log.info("catch screening: %d participants, %d excluded", report["n_participants"], report["n_excluded"])
with atomic_path(snakemake.output.trials) as tmp:
    trials.to_csv(tmp, index=False)
with atomic_path(snakemake.output.responses) as tmp:
    kept.to_csv(tmp, index=False)
with atomic_path(snakemake.output.proxy) as tmp:
    summarise_proxy(pd.concat(proxies, ignore_index=True)).to_csv(tmp, index=False, float_format="%.4f")
