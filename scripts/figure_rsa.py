"""Rule figure_rsa: each model's RSA with behaviour and with human IT, and
its odd-one-out agreement (zero-shot and linear probe), grouped by
architecture and training variant, with CIs, the noise ceiling, chance and
the pixel baseline."""

import pandas as pd

from iriflow.io import read_json
from iriflow.plots import rsa_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
table = pd.read_csv(snakemake.input.table, keep_default_na=False, na_values=[""])
fig = rsa_figure(table, read_json(snakemake.input.ceiling), snakemake.params.levels)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
