"""Rule score_alignment: % correct per condition and observer with crossed
(participants x images) bootstrap CIs, after excluding participants who fail
catch trials; one row per IRI set, trial kind, alternative and observer.

Observers: the simulated populations, and real people from the response
files in judgments.observers.real.responses (imported strictly: a bad file
stops the rule with its file, row and column, and nothing is written).
Catch screening runs per observer kind; exclusions.json reports totals and,
under ``by_observer``, the counts of each kind."""

import sys

import pandas as pd

from iriflow.config import ModelSpec
from iriflow.io import atomic_path, write_json
from iriflow.judgments import exclude_failed_catch, score
from iriflow.responses import ResponseError, as_responses, load_response_files
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
boot = snakemake.params.bootstrap
trials = pd.concat([pd.read_csv(p, keep_default_na=False) for p in snakemake.input.trials], ignore_index=True)
simulated = as_responses(pd.concat([pd.read_csv(p) for p in snakemake.input.responses], ignore_index=True))
real_files = list(snakemake.input.real)
try:
    real = load_response_files(real_files, trials)
except ResponseError as err:
    ctx.log.error("cannot import real responses; nothing was written:\n%s", err)
    sys.exit(1)
ctx.log.info(
    "real observers: %d responses of %d participants from %d file(s)",
    len(real),
    real["participant"].nunique(),
    len(real_files),
)
responses = pd.concat([simulated, real], ignore_index=True)

kept_parts, by_observer = [], {}
for observer, group in responses.groupby("observer", sort=True):
    kept_o, report_o = exclude_failed_catch(group, trials, snakemake.params.min_catch_correct)
    kept_parts.append(kept_o)
    by_observer[observer] = report_o
    ctx.log.info(
        "catch screening, %s: %d participants, %d excluded",
        observer,
        report_o["n_participants"],
        report_o["n_excluded"],
    )
kept = pd.concat(kept_parts, ignore_index=True) if kept_parts else responses
report = {
    "min_correct": float(snakemake.params.min_catch_correct),
    "n_catch_trials": int((trials["kind"] == "catch").sum()),
    **{k: sum(r[k] for r in by_observer.values()) for k in ("n_participants", "n_excluded", "n_kept")},
    "excluded": sorted(p for r in by_observer.values() for p in r["excluded"]),
    "by_observer": by_observer,
    "real_files": real_files,
}
scores = score(kept, trials, n_boot=boot["n"], level=boot["level"], seed=boot["seed"])
SET_PARTS = ["dataset", "model", "layer", "loss", "seed_type"]
parts = pd.DataFrame(scores["set_id"].str.split("/").tolist(), columns=SET_PARTS)
specs = [ModelSpec.parse(f"{d}/{m}") for d, m in zip(parts["dataset"], parts["model"])]
factors = pd.DataFrame(
    [{"arch": s.arch, "objective": s.objective, "augmentation": s.augmentation, "seed": s.seed} for s in specs],
    columns=["arch", "objective", "augmentation", "seed"],
)
table = pd.concat([parts, factors, scores.drop(columns="set_id")], axis=1)
if table.empty:
    ctx.log.warning("no IRI converged anywhere: the alignment table is empty")
with atomic_path(snakemake.output.alignment) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
write_json(snakemake.output.exclusions, report)
ctx.log.info("%d alignment rows\n%s", len(table), table.to_string(index=False))
