"""Rule alignment_table: the paper-style table of alignment (% correct with
95% CI of the primary observer and measure; rows IRI loss x training
variant, columns architecture) as CSV, Markdown, LaTeX and HTML."""

import pandas as pd

from iriflow.analysis import MEASURE_LABELS, alignment_table, primary_observer, table_html, table_latex, table_markdown
from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
prim = snakemake.params.primary
scores = pd.read_csv(snakemake.input.scores)
observer = primary_observer(scores["observer"].unique(), prim["observer"], snakemake.params.observers)
measure = prim["measure"]
sel = scores.loc[(scores["observer"] == observer) & (scores["measure"] == measure)]
table = alignment_table(sel, snakemake.params.levels)
title = (
    f"Alignment (% correct, 95% CI) of {observer}, {MEASURE_LABELS.get(measure, measure)}; "
    "IRIs of every seed type pooled"
)
out = snakemake.output
with atomic_path(out.csv) as tmp:
    table.to_csv(tmp, index=False, float_format="%.2f")
md = table_markdown(table, title)
with atomic_path(out.markdown) as tmp:
    tmp.write_text(md)
with atomic_path(out.latex) as tmp:
    tmp.write_text(table_latex(table, title))
with atomic_path(out.html) as tmp:
    tmp.write_text(table_html(table, title))
ctx.log.info("%s\n%s", title, md)
