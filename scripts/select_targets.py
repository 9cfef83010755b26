"""Rule select_targets: class-balanced, seeded draw of IRI targets from the test split."""

from iriflow.datasets import load_prepared
from iriflow.io import save_npz, write_provenance
from iriflow.runtime import RuleContext
from iriflow.targets import target_arrays
from iriflow.viz import image_grid, save_png

ctx = RuleContext(snakemake)
cfg = snakemake.params.targets
prep = load_prepared(snakemake.input.data)
targets = target_arrays(prep, cfg["n"], cfg["seed"])
save_npz(snakemake.output.targets, **targets)
labels = [prep.classes[i] for i in targets["label"]]
ncol = min(10, len(labels))
sheet = image_grid(targets["images"], ncol=ncol, scale=3 if prep.shape[1] <= 32 else 1)
save_png(snakemake.output.sheet, sheet)
ctx.log.info("%d targets, per class: %s", len(labels), {c: labels.count(c) for c in dict.fromkeys(labels)})
write_provenance(
    snakemake.output.provenance,
    cfg,
    wall_time_s=ctx.elapsed,
    dataset=snakemake.wildcards.dataset,
    n_targets=len(labels),
)
