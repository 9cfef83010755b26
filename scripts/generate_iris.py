"""Rule generate_iris: the IRI sets of one model, layer and IRI loss, one per
seed type, optimised together in batches of at most iris.max_batch images
(iriflow.iri.run_job); the job's loss curve and provenance beside them."""

from iriflow.config import iri_run_options
from iriflow.device import describe
from iriflow.io import write_provenance
from iriflow.iri import job_inputs, job_set, run_job, save_curve, save_job
from iriflow.iriset import SetId
from iriflow.models import load_model
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
s = snakemake.params.settings
seed_types = snakemake.params.seed_types
opts = iri_run_options(snakemake.config)  # no params: they change no IRI
max_batch, log_every, distances = opts["max_batch"], opts["log_every"], opts["distances"]
wc = snakemake.wildcards
out = snakemake.output
device = ctx.device()
ctx.log.info(
    "IRIs for %s/%s layer=%s loss=%s seeds=%s on %s (%d steps, batches of at most %d)",
    wc.dataset,
    wc.model,
    wc.layer,
    wc.loss,
    ",".join(seed_types),
    describe(device),
    s["steps"],
    max_batch,
)

sets = job_inputs(snakemake.input.data, snakemake.input.targets, seed_types, s["seed"])
model = load_model(snakemake.input.model, snakemake.input.info, device)
results, history = run_job(
    model,
    wc.layer,
    sets,
    s,
    device,
    max_batch,
    on_log=lambda batch, p, step, loss: ctx.log.info(
        "batch %d pass %d step %d/%d mean loss %.4f", batch, p, step, s["steps"], loss
    ),
    log_every=log_every,
)
counts = {}
for inputs, result, iris, table, grid in zip(sets, results, out.iris, out.table, out.grid):
    set_id = SetId(wc.dataset, wc.model, wc.layer, wc.loss, inputs.seed_type)
    settings = {**s, "model": set_id.model_id, "layer": wc.layer, "seed_type": inputs.seed_type}
    save_job(
        job_set(set_id, inputs, result, settings),
        iris=iris,
        table=table,
        grid=grid,
        distances=distances,
    )
    summary = counts[inputs.seed_type] = result.counts()
    ctx.log.info(
        "%s: relative distance median %.4f, max %.4f; converged %d/%d (threshold %g), %d of them restarted",
        set_id,
        summary["median_rel_dist"],
        result.rel_dist.max().item(),
        summary["converged"],
        summary["n"],
        s["threshold"],
        summary["restarted"],
    )
save_curve(history, out.curve)
write_provenance(
    out.provenance,
    s,
    device=describe(device),
    wall_time_s=ctx.elapsed,
    model=f"{wc.dataset}/{wc.model}",
    layer=wc.layer,
    metric=s["metric"],
    max_batch=max_batch,
    log_every=log_every,
    sets=counts,
)
