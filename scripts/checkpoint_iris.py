"""Rule checkpoint_iris: IRIs of one SimCLR training snapshot (one layer, IRI
loss and seed type: analysis.checkpoints), made exactly as the IRI stage
makes them (same seeds, optimiser and settings), so that alignment can be
followed across training."""
import numpy as np
import pandas as pd
import torch

from iriflow.datasets import load_prepared
from iriflow.device import describe, select_device
from iriflow.io import atomic_path, load_npz, torch_save, write_provenance
from iriflow.iri import SeedContext, generate, make_seeds, pool_without, seed_generator
from iriflow.represent import representation
from iriflow.runtime import RuleContext
from iriflow.snapshots import load_snapshot
from iriflow.viz import image_grid, save_png

ctx = RuleContext(snakemake)
s = snakemake.params.settings
c = snakemake.params.checkpoints
wc = snakemake.wildcards
out = snakemake.output
epoch = int(wc.epoch)
device = select_device(s["device"])
ctx.log.info("IRIs of %s/%s after epoch %d: layer=%s loss=%s seeds=%s on %s (%d steps)", wc.dataset, wc.model,
             epoch, c["layer"], c["loss"], c["seed_type"], describe(device), s["steps"])

prep = load_prepared(snakemake.input.data)
tg = load_npz(snakemake.input.targets)
targets = torch.from_numpy(tg["images"]).float().div(255)
labels = torch.from_numpy(tg["label"])
test_x, test_y = prep.tensors("test")
pool_x, pool_y = pool_without(test_x, test_y, torch.from_numpy(tg["index"]))
seeds = make_seeds(c["seed_type"], SeedContext(targets, labels, pool_x, pool_y,
                                               seed_generator(s["seed"], c["seed_type"])))
model = load_snapshot(snakemake.input.snapshots, epoch, snakemake.input.info, device)
for p in model.parameters():
    p.requires_grad_(False)
rep = representation(model, c["layer"], fake_relu=True)
result = generate(rep, targets.to(device), seeds.to(device), s["loss_spec"], steps=s["steps"],
                  step_size=s["step_size"], optimizer=s["optimizer"], schedule=s["step_schedule"],
                  keep_best=s["keep_best"], threshold=s["threshold"], metric=s["metric"], seed=s["seed"],
                  log_every=s["log_every"],
                  on_log=lambda step, loss: ctx.log.info("step %d/%d mean loss %.4f", step, s["steps"], loss))
rel = result.rel_dist.cpu()
ctx.log.info("relative distance: median %.4f; converged %d/%d", rel.median().item(),
             int(result.converged.sum()), len(rel))
torch_save(out.iris, {"iris": result.iris.cpu(), "seeds": seeds, "targets": targets, "target_index": tg["index"],
                      "target_label": labels, "rel_dist": rel, "loss": result.loss.cpu(),
                      "converged": result.converged.cpu(), "metric": s["metric"], "loss_spec": s["loss_spec"],
                      "epoch": epoch})
with atomic_path(out.table) as tmp:
    pd.DataFrame({"target": np.arange(len(rel)), "label": tg["label"], "rel_dist": rel.numpy(),
                  "converged": result.converged.cpu().numpy()}).to_csv(tmp, index=False, float_format="%.6g")
save_png(out.grid, image_grid(torch.cat([seeds, result.iris.cpu(), targets]), ncol=len(rel), scale=2,
                              row_labels=["seed", "IRI", "target"]))
write_provenance(out.provenance, {**s, **c}, device=describe(device), wall_time_s=ctx.elapsed,
                 model=f"{wc.dataset}/{wc.model}", epoch=epoch, median_rel_dist=float(rel.median()),
                 converged=int(result.converged.sum()), n=len(rel))
