"""Rule register_external: use a published/user checkpoint instead of training."""

from iriflow.datasets import load_prepared
from iriflow.models import load_external, save_model
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
ext = snakemake.params.external
prep = load_prepared(snakemake.input.data)
spec = {
    "arch": ext["arch"],
    "num_classes": prep.num_classes,
    "in_channels": prep.shape[0],
    "mean": prep.mean.tolist(),
    "std": prep.std.tolist(),
    "width": ext.get("width", ext["width_default"]),
    "stem_stride": ext.get("stem_stride", 1),
}
model = load_external(ext["path"], spec)
save_model(
    snakemake.output.model,
    snakemake.output.info,
    model,
    {
        "id": f"{snakemake.wildcards.dataset}/{snakemake.wildcards.model}",
        "external": ext["path"],
        "objective": {"kind": "external"},
        "objective_name": ext.get("objective", "external"),
        "augmentation": ext.get("augmentation", "external"),
    },
)
ctx.log.info("registered %s from %s", snakemake.wildcards.model, ext["path"])
