"""Rule figure_iri_grids: example IRIs of a standard and an adversarially
trained model under every IRI loss, with their seeds and targets."""

import torch

from iriflow.plots import iri_grid_figure, save_figure
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
p = snakemake.params
paths = iter(snakemake.input.iris)
sets = {}
for loss in p.losses:
    for model in p.models:
        saved = torch.load(next(paths), weights_only=False)
        sets[(loss, model)] = {k: saved[k].numpy() for k in ("iris", "seeds", "targets", "target_label", "converged")}
fig = iri_grid_figure(sets, p.losses, p.models, p.n, p.seed_type)
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
