"""Rule checkpoint_iris: IRIs of one SimCLR training snapshot (one layer, IRI
loss and seed type: analysis.checkpoints), made exactly as the IRI stage
makes them (same seeds, optimiser and settings), so that alignment can be
followed across training."""

from iriflow.device import describe, select_device
from iriflow.io import write_provenance
from iriflow.iri import job_inputs, job_set, run_job, save_job
from iriflow.iriset import SetId
from iriflow.runtime import RuleContext
from iriflow.snapshots import load_snapshot

ctx = RuleContext(snakemake)
s = snakemake.params.settings
c = snakemake.params.checkpoints
wc = snakemake.wildcards
out = snakemake.output
epoch = int(wc.epoch)
device = select_device(s["device"])
ctx.log.info(
    "IRIs of %s/%s after epoch %d: layer=%s loss=%s seeds=%s on %s (%d steps)",
    wc.dataset,
    wc.model,
    epoch,
    c["layer"],
    c["loss"],
    c["seed_type"],
    describe(device),
    s["steps"],
)

inputs = job_inputs(snakemake.input.data, snakemake.input.targets, c["seed_type"], s["seed"])
model = load_snapshot(snakemake.input.snapshots, epoch, snakemake.input.info, device)
result = run_job(
    model,
    c["layer"],
    inputs,
    s,
    device,
    on_log=lambda step, loss: ctx.log.info("step %d/%d mean loss %.4f", step, s["steps"], loss),
)
rel = result.rel_dist
ctx.log.info(
    "relative distance: median %.4f; converged %d/%d", rel.median().item(), int(result.converged.sum()), len(rel)
)
set_id = SetId(wc.dataset, wc.model, c["layer"], c["loss"], c["seed_type"], epoch)
settings = {**s, "model": set_id.model_id, "layer": c["layer"], "seed_type": c["seed_type"], "epoch": epoch}
save_job(job_set(set_id, inputs, result, settings), result.history, iris=out.iris, table=out.table, grid=out.grid)
write_provenance(
    out.provenance,
    {**s, **c},
    device=describe(device),
    wall_time_s=ctx.elapsed,
    model=f"{wc.dataset}/{wc.model}",
    epoch=epoch,
    median_rel_dist=float(rel.median()),
    converged=int(result.converged.sum()),
    n=len(rel),
)
