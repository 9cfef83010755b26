"""Rule score_alignment: % correct per condition and observer with crossed
(participants x images) bootstrap CIs, after excluding participants who fail
catch trials; one row per IRI set, trial kind, alternative and observer
(iriflow.analysis.screen_catch and alignment_scores).

Observers: the simulated populations, and real people from the response
files in judgments.observers.real.responses (imported strictly: a bad file
stops the rule with its file, row and column, and nothing is written).
Catch screening runs per observer kind; exclusions.json reports totals and,
under ``by_observer``, the counts of each kind."""

import sys

import pandas as pd

from iriflow.analysis import alignment_scores, screen_catch
from iriflow.io import atomic_path, write_json
from iriflow.responses import ResponseError, as_responses, load_response_files
from iriflow.runtime import RuleContext
from iriflow.survey import read_key

ctx = RuleContext(snakemake)
boot = snakemake.params.bootstrap
trials = pd.concat([pd.read_csv(p, keep_default_na=False) for p in snakemake.input.trials], ignore_index=True)
simulated = as_responses(pd.concat([pd.read_csv(p) for p in snakemake.input.responses], ignore_index=True))
real_files = list(snakemake.input.real)
key = read_key(snakemake.input.key[0]) if snakemake.input.key else None
try:
    real = load_response_files(real_files, trials, key)
except ResponseError as err:
    ctx.log.error("cannot import real responses; nothing was written:\n%s", err)
    sys.exit(1)
ctx.log.info(
    "real observers: %d responses of %d participants from %d file(s)",
    len(real),
    real["participant"].nunique(),
    len(real_files),
)
kept, report = screen_catch(pd.concat([simulated, real], ignore_index=True), trials, snakemake.params.min_catch_correct)
for observer, r in report["by_observer"].items():
    ctx.log.info("catch screening, %s: %d participants, %d excluded", observer, r["n_participants"], r["n_excluded"])
table = alignment_scores(
    kept, trials, external=snakemake.params.external, n_boot=boot["n"], level=boot["level"], seed=boot["seed"]
)
if table.empty:
    ctx.log.warning("no IRI converged anywhere: the alignment table is empty")
with atomic_path(snakemake.output.alignment) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
write_json(snakemake.output.exclusions, {**report, "real_files": real_files})
ctx.log.info("%d alignment rows\n%s", len(table), table.to_string(index=False))
