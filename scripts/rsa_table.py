"""Rule rsa_table: every model's RSA and odd-one-out agreement with people
(and the pixel baselines and IT references), grouped by architecture,
objective and augmentation, with CIs and the noise ceiling, as CSV,
Markdown, LaTeX and HTML, plus a plain-text summary."""

import pandas as pd

from iriflow.io import atomic_path, read_json
from iriflow.rsa import html_table, latex_table, markdown_table, summary_text, table_rows, table_title, wide_scores
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
inp, out = snakemake.input, snakemake.output
parts = [pd.read_csv(f) for f in [*inp.scores, *inp.baselines, inp.references, *inp.things]]
scores = pd.concat(parts, ignore_index=True)
ceiling = read_json(inp.ceiling)
wide = wide_scores(scores, snakemake.params.models, snakemake.params.levels)
header, rows = table_rows(wide, ceiling)
title = table_title(ceiling, snakemake.params.level)
with atomic_path(out.csv) as tmp:
    wide.to_csv(tmp, index=False, float_format="%.5f")
for path, text in (
    (out.markdown, markdown_table(header, rows, title)),
    (out.latex, latex_table(header, rows, title)),
    (out.html, html_table(header, rows, title)),
    (out.summary, summary_text(wide, ceiling)),
):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
ctx.log.info("%s\n%s", markdown_table(header, rows, title), summary_text(wide, ceiling))
