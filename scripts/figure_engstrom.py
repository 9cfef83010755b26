"""Rule figure_engstrom: feature visualisations, feature addition and
interpolation paths of a standard and a robust model (iriflow.engstrom_figures),
with every model's feature-2afc score and path smoothness."""

import pandas as pd

from iriflow.engstrom_figures import feature_addition_figure, feature_visualisation_figure, interpolation_figure
from iriflow.iriset import IRISet
from iriflow.plots import save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output


def sets(paths):
    return {m: IRISet.load(path) for m, path in zip(p.models, paths)}


figures = {
    "features": feature_visualisation_figure(sets(inp.features), pd.read_csv(inp.scores)),
    "addition": feature_addition_figure(sets(inp.addition), p.on_level),
    "interpolation": interpolation_figure(sets(inp.interpolation), pd.read_csv(inp.smoothness), p.n_pairs, p.metric),
}
for name, fig in figures.items():
    save_figure(fig, out[name])
    save_figure(fig, out[f"{name}_pdf"])
ctx.log.info("figures of %s", ", ".join(p.models))
