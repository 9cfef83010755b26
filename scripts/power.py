"""Rule power: the power planner (iriflow.power). Simulated studies of the
survey's design, answered with the valid simulated observers' per-trial
probabilities, a null and planted effects, each fitted with the statistics
rule's GLM and verdict; power per finding, scenario and number of
participants, the smallest number reaching the target power, and a figure."""

import pandas as pd

from iriflow.analysis import loss_kind, primary_observer, read_responses, read_trials
from iriflow.findings import validity_lines
from iriflow.io import atomic_path
from iriflow.plots import power_figure, save_figure
from iriflow.power import needed_table, plan, planned_findings, power_markdown, scenarios, trial_pool
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
inp, p = snakemake.input, snakemake.params
cfg, an = p.power, p.analysis
validity = pd.concat([pd.read_csv(v, keep_default_na=False) for v in inp.validity], ignore_index=True)
pool, probs, usage = trial_pool(read_trials(inp.trials), read_responses(inp.responses), p.models, validity)
order = [o for o in p.observers if o in probs] + sorted(o for o in probs if o not in p.observers)
probs = {o: probs[o] for o in order}
base = primary_observer(order, an["primary"]["observer"], p.observers) or (order[0] if order else None)
losses = p.iris["losses"]
regfree = next((loss for loss in losses if loss_kind({"iris": p.iris}, loss) == "regfree"), None)
findings = planned_findings(pool, an["primary"]["measure"], regfree, an["alpha"])
per_participant = p.survey["trials_per_participant"] - p.survey["catch_per_participant"]
ctx.log.info(
    "pool: %d trials; %d per participant; observers %s (null and planted effects from %s); findings %s",
    len(pool),
    per_participant,
    list(probs),
    base,
    [f.number for f in findings],
)
table = plan(
    pool,
    scenarios(pool, probs, base, cfg["effects_pp"]),
    findings,
    participants=sorted(cfg["participants"]),
    per_participant=per_participant,
    n_studies=cfg["n_studies"],
    participant_sd=cfg["participant_sd"],
    analysis_kw={
        "factors": an["factors"],
        "interactions": an["interactions"],
        "preferred_levels": p.levels,
        "level": an["bootstrap"]["level"],
    },
    alpha=an["alpha"],
    seed=cfg["seed"],
)
seconds = table.attrs["seconds"]
needed = needed_table(table, cfg["target"], an["alpha"])
ctx.log.info("power (%.1f s):\n%s\nneeded:\n%s", seconds, table.to_string(index=False), needed.to_string(index=False))
with atomic_path(snakemake.output.csv) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
with atomic_path(snakemake.output.markdown) as tmp:
    tmp.write_text(
        power_markdown(
            table,
            needed,
            target=cfg["target"],
            alpha=an["alpha"],
            seconds=seconds,
            design=f"{len(pool)} trials dealt into lists of {per_participant} non-catch trials, one list per participant",
            usage="\n".join(validity_lines(usage)),
        )
    )
fig = power_figure(table, cfg["target"], an["alpha"])
save_figure(fig, snakemake.output.png)
save_figure(fig, snakemake.output.pdf)
