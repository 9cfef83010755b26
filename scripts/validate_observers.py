"""Rule validate_observers: psychometric curves of every calibrated observer
and every candidate metric on constructed trials with known answers (the
dataset's targets), and the validity table: each calibrated observer on
trials built like the real ones for every trial kind and seed type, whose
IRIs are target-dominant blends of target and seed (the target is the right
answer); it passes where its % correct is clearly above chance
(iriflow.judgments.observer_validity)."""

import pandas as pd

from iriflow.io import atomic_path, read_json
from iriflow.iri import job_inputs
from iriflow.judgments import observer_validity, validate_metric
from iriflow.plots import psychometric_figure, save_figure
from iriflow.runtime import RuleContext
from iriflow.targets import load_targets

ctx = RuleContext(snakemake)
p = snakemake.params
val, seed = p.validation, p.seed
targets, labels, _ = load_targets(snakemake.input.targets)
stored = read_json(snakemake.input.calibration)
calibration = {name: stored[name] for name in p.observers}  # the config's order, not the file's

# (observer label, metric, decision noise, lapse rate): each observer, then each
# candidate metric that no observer uses, noise-free
observed = [(f"simulated:{name}", obs["metric"], obs["sigma"], obs["lapse"]) for name, obs in calibration.items()]
used = {metric for _, metric, _, _ in observed}
candidates = [("", metric, None, 0.0) for metric in dict.fromkeys(val["metrics"]) if metric not in used]
table = pd.concat(
    [
        validate_metric(
            targets,
            labels,
            metric,
            snr_db=val["snr_db"],
            blend=val["blend"],
            repeats=val["repeats"],
            sigma=sigma,
            lapse=lapse,
            seed=seed,
        ).assign(observer=label)
        for label, metric, sigma, lapse in observed + candidates
    ],
    ignore_index=True,
)
with atomic_path(snakemake.output.curves) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
save_figure(psychometric_figure(table), snakemake.output.figure)
noise = table.loc[table["trial"] == "noise"].drop_duplicates(["metric", "level"])
ctx.log.info(
    "P(target) on target-in-noise trials, noise-free metric:\n%s",
    noise.assign(snr_db=noise["snr_db"].round(1))
    .pivot(index="snr_db", columns="metric", values="p_target")
    .round(3)
    .to_string(),
)
seed_types = list(dict.fromkeys([*p.seed_types, *([p.feature_seed_type] if p.feature_seed_type else [])]))
# the seeds of the IRI stage (they depend only on iris.seed and the seed type)
seeds = {
    j.seed_type: j.seeds for j in job_inputs(snakemake.input.data, snakemake.input.targets, seed_types, p.iri_seed)
}
validity = observer_validity(
    targets,
    labels,
    seeds,
    calibration,
    seed_types=p.seed_types,
    alternatives=p.trials["alternatives"],
    matching_k=p.trials["matching_k"],
    weights=val["seed_weights"],
    margin_pp=val["margin_pp"],
    level=val["level"],
    feature_seed_type=p.feature_seed_type,
    seed=seed,
)
validity.insert(0, "dataset", snakemake.wildcards.dataset)
with atomic_path(snakemake.output.validity) as tmp:
    validity.to_csv(tmp, index=False, float_format="%.4f")
failed = validity.loc[~validity["passed"]]
ctx.log.info(
    "observer validity (seed weights %s, pass: CI lower bound > chance + %g pp):\n%s",
    val["seed_weights"],
    val["margin_pp"],
    validity.drop(columns="reason").round(3).to_string(index=False),
)
for _, r in failed.iterrows():
    ctx.log.warning(
        "%s is not used for %s trials of %s seeds: %s", r["observer"], r["measure"], r["seed_type"], r["reason"]
    )
