"""Rule figure_accuracy: clean vs robust test accuracy of every model."""

import pandas as pd

from iriflow.analysis import model_factors
from iriflow.plots import accuracy_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
models = pd.read_csv(snakemake.input.models)
models["variant"] = [model_factors(m, snakemake.params.models)["variant"] for m in models["model_id"]]
fig = accuracy_figure(models, snakemake.params.attacks, snakemake.params.levels)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
