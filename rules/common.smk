# Shared set-up: config validation, the model grid, path helpers and input
# functions. Rules stay declarative; the logic lives in src/iriflow/.
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from iriflow.config import (
    ConfigError,
    ModelSpec,
    dataset_settings,
    datasets_used,
    engstrom_settings,
    iri_settings,
    model_grid,
    model_ids,
    model_design,
    model_settings,
    observer_name,
    plan_workflow_config,
    trial_settings,
    trials_tables,
)
from iriflow.io import clean_stale_temporaries
from iriflow.iriset import procedure_set_id

# The one validation of the run, before anything is planned (iriflow.config:
# config files, --config, schema, names, layers, files, device).
try:
    _validated = plan_workflow_config(workflow, config)
except ConfigError as err:
    raise WorkflowError(f"{err}\n(schema with descriptions: config/schema/config.schema.yaml)")
config.clear()
config.update(_validated)

R = config["results"]


# Before the first job of a real run (not a dry run): remove the temporaries
# that atomic writes of killed jobs left behind (iriflow.io).
onstart:
    for tmp in clean_stale_temporaries(R):
        print(f"removed {tmp}, left by a killed write", file=sys.stderr)


DATASETS = datasets_used(config)
MODELS = model_grid(config)
EXTERNAL = config["models"]["external"]
ALL_MODEL_IDS = model_ids(config)
TRIALS_TABLES = trials_tables(config)


def _alternatives(names):
    """A wildcard regex matching exactly these names (or nothing)."""
    return "|".join(re.escape(n) for n in sorted(set(names))) or "(?!x)x"


# Each model name belongs to exactly one producing rule: grid models are
# trained, external ones registered.
GRID_NAMES = _alternatives(m.name for m in MODELS)
EXTERNAL_NAMES = _alternatives(k.split("/", 1)[1] for k in EXTERNAL)
MODEL_NAMES = _alternatives(i.split("/", 1)[1] for i in ALL_MODEL_IDS)
IRI_LOSS_NAMES = _alternatives(config["iris"]["losses"])
SEED_TYPE_NAMES = _alternatives(config["iris"]["seed_types"])
SEED_TYPES = config["iris"]["seed_types"]
# One IRI job per model x layer x IRI loss: its directory holds the job's
# loss curve and provenance, and one directory per seed type with that IRI set.
IRI_JOB_DIR = f"{R}/iris/{{dataset}}/{{model}}/{{layer}}/{{loss}}"


wildcard_constraints:
    dataset="mnist5k|cifar10|cifar100|imagefolder",
    layer="[A-Za-z0-9_.]+",


def by_attempt(base):
    """A resource that grows with each retry (attempt 1, 2, ...)."""
    return lambda wildcards, attempt: base * attempt


def train_settings(wildcards):
    return model_settings(config, ModelSpec.parse(f"{wildcards.dataset}/{wildcards.model}"))


def checkpoint_dir(wildcards):
    """Resumable epoch checkpoints: outside the outputs, kept across failures."""
    return f"{R}/checkpoints/{wildcards.dataset}/{wildcards.model}"


def external_settings(wildcards):
    return {**EXTERNAL[f"{wildcards.dataset}/{wildcards.model}"], "width_default": config["models"]["width"]}


def iri_job_settings(wildcards):
    return iri_settings(config, wildcards.loss)


def iri_set_files(filename):
    """One file of each IRI set of an IRI job (one per seed type), with the
    job's wildcards."""
    return [f"{IRI_JOB_DIR}/{seed_type}/{filename}" for seed_type in SEED_TYPES]


def iri_outputs(filename, model_ids=None):
    """One file of every IRI set: models x layers x losses x seed types."""
    iris = config["iris"]
    return [
        f"{R}/iris/{model_id}/{layer}/{loss}/{seed_type}/{filename}"
        for model_id in (model_ids or ALL_MODEL_IDS)
        for layer in iris["layers"]
        for loss in iris["losses"]
        for seed_type in iris["seed_types"]
    ]


def model_iri_sets(wildcards):
    """The IRI sets (iris.npz) of one model."""
    return iri_outputs("iris.npz", [f"{wildcards.dataset}/{wildcards.model}"])


def data_outputs():
    return expand(
        [
            f"{R}/data/{{dataset}}/dataset.npz",
            f"{R}/targets/{{dataset}}/targets.npz",
            f"{R}/targets/{{dataset}}/targets.png",
        ],
        dataset=DATASETS,
    )


def engstrom_sets(procedure, model_ids=None):
    """The IRI sets (iris.npz) of an Engstrom procedure (features, addition,
    interpolation; rules/engstrom.smk), one per model."""
    e = config["engstrom"]
    return [
        f"{R}/engstrom/{procedure_set_id(m, e['layer'], procedure, e['features']['seed_type'])}/iris.npz"
        for m in (model_ids or ALL_MODEL_IDS)
    ]


def judged_feature_sets(model_ids=None):
    """The feature-visualisation sets that carry feature-2afc trials (none
    when engstrom.enabled is false)."""
    return engstrom_sets("features", model_ids) if config["engstrom"]["enabled"] else []


def model_feature_set(wildcards):
    """The judged feature-visualisation set of one model."""
    return judged_feature_sets([f"{wildcards.dataset}/{wildcards.model}"])
