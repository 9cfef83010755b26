"""Rule proxy_table: the human-free proxies per model and IRI loss (seed
types pooled by averaging): the 2AFC proxy (% of IRIs closer to their
target than to the other option) per alternative and metric, and STIR (mean
linear CKA of the other models' representations of targets vs IRIs);
iriflow.analysis.proxy_table."""

import pandas as pd

from iriflow.analysis import proxy_html, proxy_markdown, proxy_table
from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
table = proxy_table(
    pd.read_csv(snakemake.input.proxy), pd.read_csv(snakemake.input.stir), snakemake.params.levels["loss"]
)
out = snakemake.output
with atomic_path(out.csv) as tmp:
    table.to_csv(tmp, index=False, float_format="%.3f")
md = proxy_markdown(table)
with atomic_path(out.markdown) as tmp:
    tmp.write_text(md)
with atomic_path(out.html) as tmp:
    tmp.write_text(proxy_html(table))
ctx.log.info("proxies:\n%s", md)
