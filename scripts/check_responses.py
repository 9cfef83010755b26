"""Rule check_responses: every real observers' response file checked against
the trials tables before any scoring (a step of its own, so that a bad file
stops the run here and score_alignment's existing outputs stay untouched).
Writes what was checked: per file its sha256, responses and participants."""

import hashlib
import sys

import pandas as pd

from iriflow.io import write_json
from iriflow.responses import ResponseError, load_responses
from iriflow.runtime import RuleContext
from iriflow.survey import read_key

ctx = RuleContext(snakemake)
trials = pd.concat([pd.read_csv(p, keep_default_na=False) for p in snakemake.input.trials], ignore_index=True)
files = list(snakemake.input.real)
key = read_key(snakemake.input.key[0]) if snakemake.input.key else None
try:
    checked = {path: load_responses(path, trials, key) for path in files}
except ResponseError as err:
    ctx.log.error("a response file does not fit the trials tables; nothing was scored:\n%s", err)
    sys.exit(1)
summary = {
    path: {
        "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
        "responses": len(r),
        "participants": int(r["participant"].nunique()),
    }
    for path, r in checked.items()
}
write_json(snakemake.output.checked, summary)
ctx.log.info("%d response file(s) fit the trials tables: %s", len(files), summary)
