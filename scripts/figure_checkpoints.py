"""Rule figure_checkpoints: alignment of SimCLR snapshots' IRIs across
training epochs, plain vs adversarial views."""

import pandas as pd

from iriflow.plots import checkpoint_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
c = snakemake.params.checkpoints
scores = pd.read_csv(snakemake.input.scores)
fig = checkpoint_figure(
    scores,
    snakemake.params.primary["measure"],
    snakemake.params.levels,
    subtitle=f"IRI loss {c['loss']}, {c['seed_type']} seeds, layer {c['layer']}",
)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
