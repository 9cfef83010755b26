"""Rule prepare_dataset: read a dataset from its source and store it prepared."""

from iriflow.datasets import prepare, save_prepared
from iriflow.io import write_json, write_provenance
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
name = snakemake.wildcards.dataset
prep = prepare(name, snakemake.params.data)
save_prepared(snakemake.output.data, prep)
write_json(snakemake.output.meta, prep.meta())
write_provenance(snakemake.output.provenance, snakemake.params.data, wall_time_s=ctx.elapsed, dataset=name)
