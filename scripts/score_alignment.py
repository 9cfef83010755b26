"""Rule score_alignment: % correct per condition and observer with crossed
(participants x images) bootstrap CIs, after excluding participants who fail
catch trials; one row per IRI set, trial kind and alternative."""
import pandas as pd

from iriflow.config import ModelSpec
from iriflow.io import atomic_path, write_json
from iriflow.judgments import exclude_failed_catch, score
from iriflow.responses import as_responses
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
boot = snakemake.params.bootstrap
trials = pd.concat([pd.read_csv(p, keep_default_na=False) for p in snakemake.input.trials], ignore_index=True)
responses = as_responses(pd.concat([pd.read_csv(p) for p in snakemake.input.responses], ignore_index=True))
kept, report = exclude_failed_catch(responses, trials, snakemake.params.min_catch_correct)
ctx.log.info("catch screening: %d participants, %d excluded", report["n_participants"], report["n_excluded"])
scores = score(kept, trials, n_boot=boot["n"], level=boot["level"], seed=boot["seed"])
SET_PARTS = ["dataset", "model", "layer", "loss", "seed_type"]
parts = pd.DataFrame(scores["set_id"].str.split("/").tolist(), columns=SET_PARTS)
specs = [ModelSpec.parse(f"{d}/{m}") for d, m in zip(parts["dataset"], parts["model"])]
factors = pd.DataFrame([{"arch": s.arch, "objective": s.objective, "augmentation": s.augmentation,
                         "seed": s.seed} for s in specs], columns=["arch", "objective", "augmentation", "seed"])
table = pd.concat([parts, factors, scores.drop(columns="set_id")], axis=1)
if table.empty:
    ctx.log.warning("no IRI converged anywhere: the alignment table is empty")
with atomic_path(snakemake.output.alignment) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
write_json(snakemake.output.exclusions, report)
ctx.log.info("%d alignment rows\n%s", len(table), table.to_string(index=False))
