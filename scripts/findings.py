"""Rule statistics: the paper's three findings tested on the judgments. (Not
named statistics.py: scripts/ is on sys.path, and that would shadow the
standard library's statistics module.)

For every observer kind and measure: a binomial GLM of trial correctness on
the design factors crossed with the IRI loss (participants and IRIs as
two-way clusters), Rao-Scott corrected LR tests per factor, Holm-adjusted
contrasts, model pairs and comparisons with chance (iriflow.stats); the same
across SimCLR checkpoints; agreement between observer kinds and proxies; the
verdict on each finding (iriflow.analysis) and a plain-text summary."""

import html

import pandas as pd

from iriflow.analysis import (
    FEATURE_MEASURE,
    evaluate_findings,
    load_answers,
    preferred_levels,
    primary_observer,
    summary_text,
)
from iriflow.io import atomic_path, read_json
from iriflow.runtime import RuleContext
from iriflow.stats import agreement, analyse

ctx = RuleContext(snakemake)
inp, p = snakemake.input, snakemake.params
acfg = p.analysis
alpha, level = acfg["alpha"], acfg["bootstrap"]["level"]
cfg = {"models": p.models, "iris": p.iris}
levels = preferred_levels(cfg)
excluded = read_json(inp.exclusions)["excluded"]
data = load_answers(inp.trials, inp.responses, p.models, real_paths=list(inp.real), excluded=excluded)
ckpt = load_answers(inp.checkpoint_trials, inp.checkpoint_responses, p.models)
ctx.log.info("%d answers (%d at SimCLR checkpoints)", len(data), len(ckpt))


def collect(results, name, by):
    out = {k: [] for k in ("tests", "contrasts", "coefficients")}
    for (obs, meas), an in results.items():
        for k in out:
            t = getattr(an, k)
            out[k].append(
                t.assign(analysis=name, observer=obs, measure=meas)[["analysis", "observer", "measure", *t.columns]]
            )
    return out


main, chk, notes = {}, {}, {}
for (obs, meas), g in data.groupby(["observer", "measure"], sort=True):
    feature = meas == FEATURE_MEASURE  # feature-2afc: one set per model, no IRI loss or seed type to vary
    an = analyse(
        g,
        acfg["factors"],
        by=None if feature else "loss",
        covariates=() if feature else ("seed_type",),
        interactions=acfg["interactions"],
        preferred_levels=levels,
        level=level,
    )
    main[(obs, meas)] = an
    ctx.log.info(
        "%s %s: %d answers, factors %s; tests:\n%s",
        obs,
        meas,
        an.n,
        an.factors,
        an.tests.round(4).to_string(index=False),
    )
    for k, v in an.notes.items():
        notes.setdefault(f"{k} ({'feature-2afc' if feature else 'main'} model)", v)
if len(ckpt):
    ckpt_levels = {**levels, "epoch": sorted(ckpt["epoch"].unique(), key=int)}
    for (obs, meas), g in ckpt.groupby(["observer", "measure"], sort=True):
        an = analyse(
            g,
            acfg["factors"],
            by="epoch",
            covariates=(),
            interactions=acfg["interactions"],
            preferred_levels=ckpt_levels,
            level=level,
        )
        chk[(obs, meas)] = an
        ctx.log.info(
            "checkpoints, %s %s: factors %s; tests:\n%s",
            obs,
            meas,
            an.factors,
            an.tests.round(4).to_string(index=False),
        )
        for k, v in an.notes.items():
            notes.setdefault(f"{k} (checkpoint model)", v)
parts = collect(main, "main", "loss")
for k, v in collect(chk, "checkpoints", "epoch").items():
    parts[k] += v
for k in ("tests", "contrasts", "coefficients"):
    table = pd.concat(parts[k], ignore_index=True) if parts[k] else pd.DataFrame()
    with atomic_path(getattr(snakemake.output, k)) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")

# agreement: observer kinds per IRI set and per IRI; proxies and STIR per set
per_set = data.groupby(["observer", "measure", "set_id"], sort=True)["correct"].mean().rename("prop_correct")
per_set = per_set.reset_index()
proxy = pd.read_csv(inp.proxy)
proxy_rows = pd.DataFrame(
    {
        "observer": "proxy:" + proxy["metric"],
        "measure": "2afc:" + proxy["alternative"],
        "set_id": proxy["set_id"],
        "prop_correct": proxy["proxy"],
    }
)
stir = pd.read_csv(inp.stir)
stir = stir.loc[stir["model"] != stir["reference_model"]].groupby("set_id")["cka"].mean()
stir_rows = pd.concat(
    [
        pd.DataFrame({"observer": "stir", "measure": m, "set_id": stir.index, "prop_correct": stir.to_numpy()})
        for m in per_set["measure"].unique()
    ]
)
sets = pd.concat([per_set, proxy_rows, stir_rows], ignore_index=True)
sets = sets.loc[sets["measure"].isin(per_set["measure"].unique())]
items = data.groupby(["observer", "measure", "item"], sort=True)["correct"].mean().rename("prop_correct")
agree = pd.concat(
    [agreement(sets, "set_id").assign(unit="IRI set"), agreement(items.reset_index(), "item").assign(unit="IRI")],
    ignore_index=True,
)
with atomic_path(snakemake.output.agreement) as tmp:
    agree.to_csv(tmp, index=False, float_format="%.4f")

scores = pd.read_csv(inp.checkpoint_scores) if len(ckpt) else None
if scores is not None:
    scores["epoch"] = scores["epoch"].astype(str)
findings = evaluate_findings(main, chk, scores, {"iris": p.iris}, alpha)
with atomic_path(snakemake.output.findings) as tmp:
    findings.to_csv(tmp, index=False, float_format="%.6g")

primary = primary_observer(data["observer"].unique(), acfg["primary"]["observer"], p.observers)
participants = data.groupby("observer")["participant"].nunique()
context = {
    "models": f"{data['model'].nunique()} ({', '.join(sorted(data['model'].unique()))})" if len(data) else "none",
    "IRI losses": ", ".join(p.iris["losses"]),
    "seed types": ", ".join(p.iris["seed_types"]),
    "observers": ", ".join(f"{o} ({n} participants)" for o, n in participants.items()) or "none",
    "answers": f"{len(data)} (catch trials excluded; {len(excluded)} participants excluded on catch trials)",
    "SimCLR checkpoints": (
        f"{ckpt['model'].nunique()} models x epochs {', '.join(sorted(ckpt['epoch'].unique(), key=int))}"
        if len(ckpt)
        else "none in this grid"
    ),
}
shown = agree.loc[
    (agree["unit"] == "IRI set")
    & ~agree["observer_a"].str.startswith(("proxy", "stir"))
    & ~agree["observer_b"].str.startswith(("proxy", "stir"))
]
text = summary_text(
    findings,
    primary_observer=primary,
    primary_measure=acfg["primary"]["measure"],
    context=context,
    agreement=shown,
    notes=notes,
    alpha=alpha,
)
with atomic_path(snakemake.output.summary) as tmp:
    tmp.write_text(text)
with atomic_path(snakemake.output.summary_html) as tmp:
    tmp.write_text(
        "<!DOCTYPE html><meta charset='utf-8'><title>summary</title>"
        f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>\n"
    )
ctx.log.info("summary:\n%s", text)
