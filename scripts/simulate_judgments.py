"""Rule simulate_judgments: the trials of every IRI set of one model (and the
feature-2afc trials of its feature-visualisation set), answered by each
configured population of simulated observers (in the schema of real
responses), with the decision noise from calibrate_observers."""

import pandas as pd

from iriflow.io import atomic_path, read_json
from iriflow.iriset import IRISet
from iriflow.judgments import set_trials, simulate_observers
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
cfg = snakemake.params.judgments
observers = read_json(snakemake.input.calibration)  # name -> metric, sigma, sigma_spread, lapse, n_participants
all_trials, all_responses = [], []
for path in [*snakemake.input.iris, *snakemake.input.features]:
    iri_set = IRISet.load(path)
    trials = set_trials(iri_set, cfg)
    for name, obs in observers.items():
        if iri_set.loss_spec["kind"].startswith("adversarial") and obs["metric"] == iri_set.metric:
            ctx.log.warning(
                "%s: observer %s uses metric %s, the one these IRIs were optimised against",
                iri_set.id,
                name,
                obs["metric"],
            )
    all_responses += simulate_observers(trials, iri_set.images(), observers, cfg["seed"])
    ctx.log.info(
        "%s: %d trials (%d IRIs not converged, no trials), %d observer populations",
        iri_set.id,
        len(trials),
        trials.attrs.get("n_not_converged", 0),
        len(observers),
    )
    all_trials.append(trials)
with atomic_path(snakemake.output.trials) as tmp:
    pd.concat(all_trials, ignore_index=True).to_csv(tmp, index=False)
with atomic_path(snakemake.output.responses) as tmp:
    pd.concat(all_responses, ignore_index=True).to_csv(tmp, index=False)
