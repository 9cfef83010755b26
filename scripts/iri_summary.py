"""Rule iri_summary: one row per IRI job with the share of converged IRIs."""

from pathlib import Path

import pandas as pd

from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
R = Path(snakemake.config["results"]) / "iris"
rows = []
for path in map(Path, snakemake.input.tables):
    dataset, model, layer, loss, seed_type = path.parent.relative_to(R).parts
    t = pd.read_csv(path)
    rows.append(
        {
            "dataset": dataset,
            "model": model,
            "layer": layer,
            "loss": loss,
            "seed_type": seed_type,
            "n": len(t),
            "converged_share": t["converged"].mean(),
            "restarted_share": (t["restarts"] > 0).mean(),
            "median_rel_dist": t["rel_dist"].median(),
            "max_rel_dist": t["rel_dist"].max(),
        }
    )
summary = pd.DataFrame(rows)
with atomic_path(snakemake.output.summary) as tmp:
    summary.to_csv(tmp, index=False, float_format="%.4f")
ctx.log.info(
    "%d IRI jobs; %d with every IRI converged (threshold %g)\n%s",
    len(summary),
    int((summary["converged_share"] == 1).sum()),
    snakemake.params.threshold,
    summary.to_string(index=False),
)
