# Shared set-up: config validation, the model grid, path helpers and input
# functions. Rules stay declarative; the logic lives in scripts/iriflow/.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from iriflow.config import ConfigError, datasets_used, model_grid, validate_config  # noqa: E402

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(f"{err}\n(schema with descriptions: config/schema/config.schema.yaml)")
config.clear()
config.update(_validated)

R = config["results"]
DATASETS = datasets_used(config)
MODELS = model_grid(config)


wildcard_constraints:
    dataset="mnist5k|cifar10|cifar100|imagefolder",


def by_attempt(base):
    """A resource that grows with each retry (attempt 1, 2, ...)."""
    return lambda wildcards, attempt: base * attempt


def data_outputs():
    return expand(
        [
            f"{R}/data/{{dataset}}/dataset.npz",
            f"{R}/targets/{{dataset}}/targets.npz",
            f"{R}/targets/{{dataset}}/targets.png",
        ],
        dataset=DATASETS,
    )
