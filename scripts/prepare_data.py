"""Rule prepare_dataset: read a dataset from its source and store it prepared."""

from iriflow.datasets import LOCATION_KEYS, prepare, save_prepared
from iriflow.io import write_json, write_provenance
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
name = snakemake.wildcards.dataset
# the download cache and switch come from the config, not params: they change no image
location = {k: snakemake.config["data"][k] for k in LOCATION_KEYS}
prep = prepare(name, {**location, **snakemake.params.data})
save_prepared(snakemake.output.data, prep)
write_json(snakemake.output.meta, prep.meta())
write_provenance(snakemake.output.provenance, snakemake.params.data, wall_time_s=ctx.elapsed, dataset=name)
