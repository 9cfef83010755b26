"""Rule figure_proxies: observers' % correct per IRI set against the 2AFC
proxy (same alternative) and against STIR."""

import pandas as pd

from iriflow.plots import proxy_data, proxy_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
data = proxy_data(
    pd.read_csv(snakemake.input.alignment, keep_default_na=False, na_values=[""]),
    pd.read_csv(snakemake.input.proxy),
    pd.read_csv(snakemake.input.stir),
    snakemake.params.primary["measure"],
)
fig = proxy_figure(data, snakemake.params.levels)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
