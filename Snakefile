# Do invariances in deep networks align with human perception? (Nanda et al. 2023)
# From raw data to the paper's figures; see README.md. Stages live in rules/.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# The library is src/iriflow of this checkout, and only that: rule jobs import it
# through PYTHONPATH, which every job inherits (local, --sdm conda, SLURM), and the
# Python that runs Snakemake has it installed editable (./run does that).
SRC = os.path.join(workflow.basedir, "src")
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
try:
    import iriflow
except ImportError:
    raise WorkflowError(
        f"the iriflow library is not installed in {sys.executable}: run the workflow "
        f"with ./run workflow, or `pip install -e {workflow.basedir}` first"
    )
if not os.path.realpath(iriflow.__file__).startswith(os.path.realpath(SRC) + os.sep):
    raise WorkflowError(
        f"snakemake imports iriflow from {os.path.dirname(iriflow.__file__)}, not from "
        f"this checkout's {SRC}: install this checkout (`pip install -e {workflow.basedir}`)"
    )


# The default config is found next to this file, so the workflow also runs from
# another working directory (snakemake -s path/to/Snakefile -d scratch/). It is
# read here first, so that a broken file is reported with its name and line.
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
from iriflow.config import ConfigError, read_config_file

try:
    read_config_file(DEFAULT_CONFIG)
except ConfigError as err:
    raise WorkflowError(str(err))


configfile: DEFAULT_CONFIG


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/iri.smk"
include: "rules/judgments.smk"
include: "rules/survey.smk"
include: "rules/analysis.smk"
include: "rules/rsa.smk"
include: "rules/engstrom.smk"


rule all:
    default_target: True
    input:
        data_outputs(),
        rules.models_table.output.table,
        rules.iri_summary.output.summary,
        rules.score_alignment.output.alignment,
        rules.figures.input,
        RSA_TARGETS,
        ENGSTROM_TARGETS,


# The HTML report (figures, tables and statistics with their captions), once
# every file it shows exists: rules/analysis.smk, analysis.report.
onsuccess:
    write_report()
