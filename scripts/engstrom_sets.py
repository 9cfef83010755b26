"""Rules feature_visualisation, feature_addition and interpolation: one
procedure of Engstrom et al. 2019 (params.procedure; iriflow.engstrom) for
every model, each model's images as an IRI set, and a table of all of them
(for interpolation also the path smoothness of every pair)."""

from pathlib import Path

import pandas as pd
import torch

from iriflow.datasets import load_prepared
from iriflow.device import describe
from iriflow.engstrom import PROCEDURE_JOBS, ModelJob, path_smoothness
from iriflow.io import atomic_path, write_provenance
from iriflow.iriset import procedure_set_id
from iriflow.models import load_model
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output
s = p.settings
job = PROCEDURE_JOBS[p.procedure]
device = ctx.device()
data = {Path(d).parent.name: d for d in inp.data}
tests: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
tables, smooth = [], []
for model_id, model_pt, iris in zip(p.model_ids, inp.models, out.sets):
    dataset = model_id.split("/", 1)[0]
    if dataset not in tests:
        tests[dataset] = load_prepared(data[dataset]).tensors("test")
    model = load_model(model_pt, device=device)
    sid = procedure_set_id(model_id, s["layer"], p.procedure, s.get("seed_type"))
    iri_set = job.build(ModelJob(model, sid, *tests[dataset], s, device))
    iri_set.save(iris)
    tables.append(job.summary(iri_set))
    ctx.log.info("%s: %d images, %d converged; %.1f s so far", sid, len(iri_set), iri_set.converged.sum(), ctx.elapsed)
    if p.procedure == "interpolation":
        smooth.append(path_smoothness(iri_set, s["metric"]))
table = pd.concat(tables, ignore_index=True)
with atomic_path(out.table) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
if smooth:
    with atomic_path(out.smoothness) as tmp:
        pd.concat(smooth, ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
ctx.log.info("%s on %s:\n%s", p.procedure, describe(device), table.to_string(index=False))
write_provenance(out.provenance, s, device=describe(device), wall_time_s=ctx.elapsed, models=list(p.model_ids))
