"""Rule alignment_table: the paper-style table of alignment (% correct with
95% CI of the primary observer and measure; rows IRI loss x training
variant, columns architecture) as CSV, Markdown, LaTeX and HTML."""

import html

import pandas as pd

from iriflow.analysis import MEASURE_LABELS, alignment_table, primary_observer, table_latex, table_markdown
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
rows = [line.strip("|").split("|") for line in md.splitlines()[2:] if line.startswith("|")]
body = "".join(
    "<tr>"
    + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>" for c in r)
    + "</tr>"
    for i, r in enumerate(rows)
    if i != 1
)
with atomic_path(out.html) as tmp:
    tmp.write_text(
        f"<!DOCTYPE html><meta charset='utf-8'><title>alignment table</title>"
        f"<style>td,th{{padding:2px 8px;text-align:right}}</style><p>{html.escape(title)}</p>"
        f"<table>{body}</table>\n"
    )
ctx.log.info("%s\n%s", title, md)
