"""Rule checkpoint_judgments: trials for the IRIs of every SimCLR snapshot,
answered by the same simulated observer populations as the main IRI sets
(calibrated by calibrate_observers), screened on catch trials, and the 2AFC
proxy of each. Set ids end in /epochNNNN (iriflow.iriset.SetId); the last
snapshot's IRIs are the final model's, made by the IRI stage."""

from pathlib import Path

import pandas as pd

from iriflow.io import atomic_path, read_json
from iriflow.iriset import IRISet
from iriflow.judgments import set_trials, simulate_observers
from iriflow.proxies import proxy_2afc, summarise_proxy
from iriflow.runtime import RuleContext
from iriflow.scoring import exclude_failed_catch

ctx = RuleContext(snakemake)
cfg = snakemake.params.judgments
calibrations = {Path(p).parent.name: read_json(p) for p in snakemake.input.calibration}  # dataset -> observers
all_trials, all_responses, proxies = [], [], []
for epoch, path in zip(snakemake.params.epochs, snakemake.params.paths):
    iri_set = IRISet.load(path)
    set_id = iri_set.id.with_epoch(epoch)
    trials = set_trials(iri_set, cfg, str(set_id))
    images = iri_set.images()
    all_responses += simulate_observers(trials, images, calibrations[set_id.dataset], cfg["seed"])
    for metric in snakemake.params.proxy_metrics:
        proxies.append(proxy_2afc(trials, images, metric))
    ctx.log.info("%s: %d trials, %d of %d IRIs converged", set_id, len(trials), iri_set.converged.sum(), len(iri_set))
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
