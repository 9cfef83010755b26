"""Rule checkpoint_iris: the IRIs of every training snapshot of one SimCLR
model (one layer, IRI loss and seed type: analysis.checkpoints), made
exactly as the IRI stage makes them (same seeds, optimiser and settings), so
that alignment can be followed across training. One folder per job:
epoch<NNNN>/{iris.npz,iris.csv,grid.png} per snapshot, the loss curve
(curve.csv: epoch, batch, step, mean loss) and provenance.json."""

import shutil
from pathlib import Path

import pandas as pd

from iriflow.config import iri_run_options
from iriflow.device import describe
from iriflow.io import atomic_path, write_provenance
from iriflow.iri import CURVE_COLUMNS, job_inputs, job_set, run_job, save_job
from iriflow.iriset import SetId
from iriflow.runtime import RuleContext
from iriflow.snapshots import load_snapshot

ctx = RuleContext(snakemake)
s = snakemake.params.settings
c = snakemake.params.checkpoints
epochs = snakemake.params.epochs
opts = iri_run_options(snakemake.config)  # no params: they change no IRI
max_batch, log_every, distances = opts["max_batch"], opts["log_every"], opts["distances"]
wc = snakemake.wildcards
out = Path(snakemake.output.sets)
device = ctx.device()
ctx.log.info(
    "IRIs of %s/%s after epochs %s: layer=%s loss=%s seeds=%s on %s (%d steps)",
    wc.dataset,
    wc.model,
    epochs,
    c["layer"],
    c["loss"],
    c["seed_type"],
    describe(device),
    s["steps"],
)

tmp = out.with_name(out.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
(inputs,) = job_inputs(snakemake.input.data, snakemake.input.targets, [c["seed_type"]], s["seed"])
curves, counts = [], {}
for epoch in epochs:
    model = load_snapshot(snakemake.input.snapshots, epoch, snakemake.input.info, device)
    (result,), history = run_job(
        model,
        c["layer"],
        [inputs],
        s,
        device,
        max_batch,
        on_log=lambda b, p, step, loss, epoch=epoch: ctx.log.info(
            "epoch %d pass %d step %d/%d mean loss %.4f", epoch, p, step, s["steps"], loss
        ),
        log_every=log_every,
    )
    summary = counts[epoch] = result.counts()
    ctx.log.info(
        "epoch %d: relative distance median %.4f; converged %d/%d, %d of them restarted",
        epoch,
        summary["median_rel_dist"],
        summary["converged"],
        summary["n"],
        summary["restarted"],
    )
    set_id = SetId(wc.dataset, wc.model, c["layer"], c["loss"], c["seed_type"], epoch)
    settings = {**s, "model": set_id.model_id, "layer": c["layer"], "seed_type": c["seed_type"], "epoch": epoch}
    d = tmp / f"epoch{epoch:04d}"
    d.mkdir(parents=True)
    save_job(
        job_set(set_id, inputs, result, settings),
        iris=d / "iris.npz",
        table=d / "iris.csv",
        grid=d / "grid.png",
        distances=distances,
    )
    curves += [(epoch, *row) for row in history]
with atomic_path(tmp / "curve.csv") as path:
    pd.DataFrame(curves, columns=["epoch", *CURVE_COLUMNS]).to_csv(path, index=False, float_format="%.6g")
write_provenance(
    tmp / "provenance.json",
    {**s, **c},
    device=describe(device),
    wall_time_s=ctx.elapsed,
    model=f"{wc.dataset}/{wc.model}",
    max_batch=max_batch,
    log_every=log_every,
    epochs=counts,
)
shutil.rmtree(out, ignore_errors=True)
tmp.rename(out)
