"""Rule generate_iris: IRIs of one model, layer, IRI loss and seed type."""

from iriflow.device import describe, select_device
from iriflow.io import write_provenance
from iriflow.iri import job_inputs, job_set, run_job, save_job
from iriflow.iriset import SetId
from iriflow.models import load_model
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
s = snakemake.params.settings
wc = snakemake.wildcards
out = snakemake.output
device = select_device(s["device"])
ctx.log.info(
    "IRIs for %s/%s layer=%s loss=%s seeds=%s on %s (%d steps)",
    wc.dataset,
    wc.model,
    wc.layer,
    wc.loss,
    wc.seed_type,
    describe(device),
    s["steps"],
)

inputs = job_inputs(snakemake.input.data, snakemake.input.targets, wc.seed_type, s["seed"])
model = load_model(snakemake.input.model, snakemake.input.info, device)
result = run_job(
    model,
    wc.layer,
    inputs,
    s,
    device,
    on_log=lambda step, loss: ctx.log.info("step %d/%d mean loss %.4f", step, s["steps"], loss),
)
rel = result.rel_dist
ctx.log.info(
    "relative distance: median %.4f, max %.4f; converged %d/%d (threshold %g)",
    rel.median().item(),
    rel.max().item(),
    int(result.converged.sum()),
    len(rel),
    s["threshold"],
)
set_id = SetId(wc.dataset, wc.model, wc.layer, wc.loss, wc.seed_type)
iri_set = job_set(set_id, inputs, result, {**s, "model": set_id.model_id, "layer": wc.layer, "seed_type": wc.seed_type})
save_job(
    iri_set,
    result.history,
    iris=out.iris,
    table=out.table,
    grid=out.grid,
    curve=out.curve,
    distances=snakemake.params.distances,
)
write_provenance(
    out.provenance,
    s,
    device=describe(device),
    wall_time_s=ctx.elapsed,
    model=f"{wc.dataset}/{wc.model}",
    layer=wc.layer,
    seed_type=wc.seed_type,
    metric=s["metric"],
    median_rel_dist=float(rel.median()),
    converged=int(result.converged.sum()),
    n=len(rel),
)
