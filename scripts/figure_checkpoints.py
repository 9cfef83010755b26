"""Rule figure_checkpoints: alignment of SimCLR snapshots' IRIs across
training epochs, plain vs adversarial views, beside the standard supervised
models plain SimCLR is compared with (finding 3, part c)."""

import pandas as pd

from iriflow.findings import reference_scores
from iriflow.plots import checkpoint_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
c = snakemake.params.checkpoints
measure = snakemake.params.primary["measure"]
scores = pd.read_csv(snakemake.input.scores)
references = reference_scores(
    pd.read_csv(snakemake.input.alignment),
    scores,
    snakemake.params.models,
    layer=c["layer"],
    loss=c["loss"],
    seed_type=c["seed_type"],
    measure=measure,
)
ctx.log.info("supervised references:\n%s", references.to_string(index=False))
fig = checkpoint_figure(
    scores,
    measure,
    snakemake.params.levels,
    subtitle=f"IRI loss {c['loss']}, {c['seed_type']} seeds, layer {c['layer']}",
    references=references,
)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
