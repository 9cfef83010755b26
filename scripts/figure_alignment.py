"""Rule figure_alignment: alignment per model (95% CI), grouped by training
variant and architecture, one panel per IRI loss and observer kind."""

import pandas as pd

from iriflow.plots import alignment_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
scores = pd.read_csv(snakemake.input.scores)
fig = alignment_figure(scores, snakemake.params.primary["measure"], snakemake.params.levels)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
