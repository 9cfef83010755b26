"""Rule export_survey: the trials of every IRI set as a self-contained
browser survey (jsPsych) in a folder to host, with its key file and the
participants' links beside it; see iriflow.survey."""

import sys
from pathlib import Path

import pandas as pd

from iriflow.iriset import IRISet
from iriflow.runtime import RuleContext
from iriflow.survey import SurveyError, export_survey

ctx = RuleContext(snakemake)
sets = {str(s.id): s for s in map(IRISet.load, [*snakemake.input.iris, *snakemake.input.features])}
trials = pd.concat([pd.read_csv(p, keep_default_na=False) for p in snakemake.input.trials], ignore_index=True)


def load_set(set_id):
    if set_id not in sets:
        raise SurveyError(f"trials of IRI set {set_id!r}, which is not among the rule's IRI set inputs")
    return sets[set_id].images()


try:
    export_survey(
        trials,
        load_set,
        Path(snakemake.output.key).parent,
        snakemake.params.survey,
        package_dir=Path(snakemake.input.package).parent,
        log=ctx.log,
    )
except SurveyError as err:
    ctx.log.error("cannot export the survey: %s", err)
    sys.exit(1)
ctx.log.info("done in %.1f s", ctx.elapsed)
