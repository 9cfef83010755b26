# Do invariances in deep networks align with human perception? (Nanda et al. 2023)
# From raw data to the paper's figures; see README.md. Stages live in rules/.
import os

from snakemake.utils import min_version

min_version("9.0")


# The default config is found next to this file, so the workflow also runs from
# another working directory (snakemake -s path/to/Snakefile -d scratch/).
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/iri.smk"
include: "rules/judgments.smk"
include: "rules/survey.smk"
include: "rules/analysis.smk"
include: "rules/rsa.smk"


rule all:
    default_target: True
    input:
        data_outputs(),
        rules.models_table.output.table,
        rules.iri_summary.output.summary,
        rules.score_alignment.output.alignment,
        rules.figures.input,
        RSA_TARGETS,


# The HTML report (figures, tables and statistics with their captions), once
# every file it shows exists: rules/analysis.smk, analysis.report.
onsuccess:
    write_report()
