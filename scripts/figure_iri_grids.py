"""Rule figure_iri_grids: example IRIs of a standard and an adversarially
trained model under every IRI loss, with their seeds and targets."""

from iriflow.iriset import IRISet
from iriflow.plots import iri_grid_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
p = snakemake.params
paths = iter(snakemake.input.iris)
sets = {(loss, model): IRISet.load(next(paths)) for loss in p.losses for model in p.models}
fig = iri_grid_figure(sets, p.losses, p.models, p.n, p.seed_type)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
