"""Rule statistics: the paper's three findings tested on the judgments. (Not
named statistics.py: scripts/ is on sys.path, and that would shadow the
standard library's statistics module.)

For every observer kind and measure: a binomial GLM of trial correctness on
the design factors crossed with the IRI loss (participants and IRIs as
two-way clusters), Rao-Scott corrected LR tests per factor, Holm-adjusted
contrasts, model pairs and comparisons with chance (iriflow.stats); the same
across SimCLR checkpoints; agreement between observer kinds and proxies; the
verdict on each finding and a plain-text summary (iriflow.findings)."""

import html

import pandas as pd

from iriflow.analysis import load_answers, load_run_answers
from iriflow.findings import statistics
from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
inp, p = snakemake.input, snakemake.params
data, excluded = load_run_answers(inp, p.models)
ckpt = load_answers(inp.checkpoint_trials, inp.checkpoint_responses, p.models)
ctx.log.info("%d answers (%d at SimCLR checkpoints)", len(data), len(ckpt))
result = statistics(
    data,
    ckpt,
    analysis=p.analysis,
    models=p.models,
    iris=p.iris,
    observers=p.observers,
    checkpoint_scores=pd.read_csv(inp.checkpoint_scores),
    proxy=pd.read_csv(inp.proxy),
    stir=pd.read_csv(inp.stir),
    excluded=excluded,
    validity=pd.concat([pd.read_csv(v, keep_default_na=False) for v in inp.validity], ignore_index=True),
)
for name, analyses in (("main", result.main), ("checkpoints", result.checkpoints)):
    for (obs, meas), an in analyses.items():
        ctx.log.info(
            "%s, %s %s: %d answers, factors %s; tests:\n%s",
            name,
            obs,
            meas,
            an.n,
            an.factors,
            an.tests.round(4).to_string(index=False),
        )
out = snakemake.output
for name in ("tests", "contrasts", "coefficients", "findings"):
    with atomic_path(getattr(out, name)) as tmp:
        getattr(result, name).to_csv(tmp, index=False, float_format="%.6g")
with atomic_path(out.agreement) as tmp:
    result.agreement.to_csv(tmp, index=False, float_format="%.4f")
with atomic_path(out.summary) as tmp:
    tmp.write_text(result.summary)
with atomic_path(out.summary_html) as tmp:
    tmp.write_text(
        "<!DOCTYPE html><meta charset='utf-8'><title>summary</title>"
        f"<pre style='white-space:pre-wrap'>{html.escape(result.summary)}</pre>\n"
    )
ctx.log.info("observer usage (validity):\n%s", result.usage.to_string(index=False))
ctx.log.info("summary:\n%s", result.summary)
