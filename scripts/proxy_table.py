"""Rule proxy_table: the human-free proxies per model and IRI loss (seed
types pooled by averaging): the 2AFC proxy (% of IRIs closer to their
target than to the other option) per alternative and metric, and STIR (mean
linear CKA of the other models' representations of targets vs IRIs)."""

import html

import pandas as pd

from iriflow.analysis import split_set_ids
from iriflow.io import atomic_path
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
levels = snakemake.params.levels
proxy = pd.read_csv(snakemake.input.proxy)
stir = pd.read_csv(snakemake.input.stir)
cols = []
if len(proxy):
    proxy = pd.concat([proxy, split_set_ids(proxy["set_id"])], axis=1)
    proxy["column"] = "2AFC " + proxy["metric"] + " vs " + proxy["alternative"] + " (%)"
    proxy["value"] = 100 * proxy["proxy"]
    cols.append(proxy[["model", "loss", "column", "value"]])
if len(stir):
    s = stir.loc[stir["model"] != stir["reference_model"]]
    s = pd.concat(
        [s.reset_index(drop=True), split_set_ids(s["set_id"]).drop(columns="model").reset_index(drop=True)], axis=1
    )
    cols.append(s.assign(column="STIR (CKA)", value=s["cka"])[["model", "loss", "column", "value"]])
long = pd.concat(cols, ignore_index=True) if cols else pd.DataFrame(columns=["model", "loss", "column", "value"])
table = long.pivot_table(index=["model", "loss"], columns="column", values="value", aggfunc="mean").reset_index()
loss_rank = {v: i for i, v in enumerate(levels["loss"])}
table = table.sort_values(["model", "loss"], key=lambda c: c.map(loss_rank) if c.name == "loss" else c)
table.columns.name = None
with atomic_path(snakemake.output.csv) as tmp:
    table.to_csv(tmp, index=False, float_format="%.3f")
value_cols = [c for c in table.columns if c not in ("model", "loss")]


def fmt(c, v):
    return "--" if pd.isna(v) else (f"{v:.2f}" if c.startswith("STIR") else f"{v:.1f}")


lines = [
    "| model | IRI loss | " + " | ".join(value_cols) + " |",
    "| --- | --- | " + " | ".join("---:" for _ in value_cols) + " |",
]
lines += [
    f"| {r['model']} | {r['loss']} | " + " | ".join(fmt(c, r[c]) for c in value_cols) + " |"
    for _, r in table.iterrows()
]
with atomic_path(snakemake.output.markdown) as tmp:
    tmp.write_text("\n".join(lines) + "\n")
head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", "IRI loss", *value_cols])
body = "".join(
    "<tr>"
    + f"<td>{html.escape(r['model'])}</td><td>{html.escape(r['loss'])}</td>"
    + "".join(f"<td>{fmt(c, r[c])}</td>" for c in value_cols)
    + "</tr>"
    for _, r in table.iterrows()
)
with atomic_path(snakemake.output.html) as tmp:
    tmp.write_text(
        "<!DOCTYPE html><meta charset='utf-8'><title>proxies</title>"
        "<style>td,th{padding:2px 8px;text-align:right}</style>"
        f"<table><tr>{head}</tr>{body}</table>\n"
    )
ctx.log.info("proxies:\n%s", "\n".join(lines))
