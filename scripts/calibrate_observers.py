"""Rule calibrate_observers: each simulated observer's decision noise from
its psychometric anchor (or the sigma the config gives) on constructed
target-in-noise trials of the dataset's targets. The validation of the
observers and of candidate metrics is rule validate_observers': changing it
recalibrates nothing, so the observers' answers stay as they are."""

import sys

from iriflow.config import observer_name
from iriflow.io import write_json
from iriflow.judgments import calibrate_sigma, other_class_images
from iriflow.runtime import RuleContext
from iriflow.targets import load_targets

ctx = RuleContext(snakemake)
seed = snakemake.params.seed
repeats = snakemake.params.repeats
targets, labels, _ = load_targets(snakemake.input.targets)
others = other_class_images(targets, labels, seed)

calibration = {}
for i, obs in enumerate(snakemake.params.observers):
    name = observer_name(obs)
    anchor = obs["calibration"]
    sigma = obs["sigma"]
    if sigma is None:
        try:
            sigma = calibrate_sigma(
                targets,
                others,
                obs["metric"],
                snr_db=anchor["snr_db"],
                p_correct=anchor["p_correct"],
                repeats=repeats,
                seed=seed,
            )
        except ValueError as err:
            ctx.log.error("judgments.observers.simulated[%d] (%s): %s", i, name, err)
            sys.exit(1)
    calibration[name] = {
        "metric": obs["metric"],
        "sigma": sigma,
        "calibrated": obs["sigma"] is None,
        "anchor": anchor,
        "sigma_spread": obs["sigma_spread"],
        "lapse": obs["lapse"],
        "n_participants": obs["n_participants"],
    }
    ctx.log.info(
        "observer simulated:%s: metric %s, sigma %.5g (%s)",
        name,
        obs["metric"],
        sigma,
        f"75% anchor {anchor}" if obs["sigma"] is None else "from the config",
    )
write_json(snakemake.output.calibration, calibration)
