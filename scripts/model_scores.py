"""Rule model_scores: % correct per model, IRI loss, measure and observer,
pooled over seed types (items = IRIs of every seed type), with crossed
participants x items bootstrap CIs; and the same per SimCLR checkpoint.
Participants excluded on catch trials (judgments/exclusions.json) are left out."""

from iriflow.analysis import SCORE_KEYS, load_answers, load_run_answers, pooled_scores
from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
inp, p = snakemake.input, snakemake.params
boot = p.bootstrap
data, excluded = load_run_answers(inp, p.models)
ctx.log.info(
    "%d answers of %d participants (%d excluded on catch trials)",
    len(data),
    data["participant"].nunique(),
    len(excluded),
)
scores = pooled_scores(data, SCORE_KEYS, n_boot=boot["n"], level=boot["level"], seed=boot["seed"])
with atomic_path(snakemake.output.models) as tmp:
    scores.to_csv(tmp, index=False, float_format="%.4f")
ckpt = load_answers(inp.checkpoint_trials, inp.checkpoint_responses, p.models)
ckpt_scores = pooled_scores(
    ckpt, (*SCORE_KEYS, "seed_type", "epoch"), n_boot=boot["n"], level=boot["level"], seed=boot["seed"]
)
if len(ckpt_scores):
    ckpt_scores = ckpt_scores.assign(epoch=ckpt_scores["epoch"].astype(int)).sort_values(
        [*SCORE_KEYS, "epoch"], kind="stable"
    )
with atomic_path(snakemake.output.checkpoints) as tmp:
    ckpt_scores.to_csv(tmp, index=False, float_format="%.4f")
ctx.log.info(
    "scores per model (pooled over seed types):\n%s",
    scores.pivot_table(index=["loss", "variant"], columns=["observer", "measure", "arch"], values="prop_correct")
    .round(3)
    .to_string()
    if len(scores)
    else "(none)",
)
