"""Rule figure_adversarial: alignment of every model under the adversarial
IRI loss, for every measure and observer kind."""

import pandas as pd

from iriflow.plots import adversarial_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
scores = pd.read_csv(snakemake.input.scores)
fig = adversarial_figure(scores, snakemake.params.losses, snakemake.params.levels)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
