"""Rule train_model: train one grid model (resuming from its last epoch)."""

import shutil
from pathlib import Path

import torch

from iriflow.archs import build_model
from iriflow.augment import build_augmentation
from iriflow.datasets import load_prepared
from iriflow.device import describe
from iriflow.models import save_model
from iriflow.runtime import RuleContext
from iriflow.train import Trainer, build_objective, fit_linear_probe, training_fingerprint, write_history_csv

ctx = RuleContext(snakemake)
s = snakemake.params.settings
out = snakemake.output
device = ctx.device()
ctx.log.info("training %s on %s", s["id"], describe(device))

prep = load_prepared(snakemake.input.data)
x, y = prep.tensors("train")
torch.manual_seed(s["seed"])
model = build_model(
    s["arch"], prep.num_classes, prep.shape[0], prep.mean.tolist(), prep.std.tolist(), s["width"], s["stem_stride"]
)
objective = build_objective(s["objective"], model.head.in_features)
aug = build_augmentation(s["augmentation"], s["augmentations"])
ckpt = Path(snakemake.params.checkpoint)
trainer = Trainer(
    model,
    objective,
    aug,
    s["recipe"],
    s["seed"],
    device,
    checkpoint=ckpt / "last.pt",
    snapshot_dir=ckpt / "snapshots",
    fingerprint=training_fingerprint(s),
)
result = trainer.run(x, y, on_epoch=lambda row: write_history_csv(ckpt / "metrics.csv", trainer.history))

info = {
    "id": s["id"],
    "objective": s["objective"],
    "objective_name": s["objective_name"],
    "augmentation": s["augmentation"],
    "augmentations": s["augmentations"],
    "recipe": s["recipe"],
    "seed": s["seed"],
    "epochs": trainer.epoch,
    "resumed_from_epoch": result.resumed_from,
    "device": describe(device),
    "wall_time_s": round(ctx.elapsed, 2),
}
if not objective.supervised:
    info["probe_train_acc"] = fit_linear_probe(
        model, x, y, prep.num_classes, s["objective"]["probe"], s["seed"], device
    )
    ctx.log.info("linear probe train accuracy %.3f", info["probe_train_acc"])
save_model(out.model, out.info, model, info)
write_history_csv(out.metrics, result.history)

snap_tmp = Path(out.snapshots + ".tmp")
shutil.rmtree(snap_tmp, ignore_errors=True)
if (ckpt / "snapshots").exists():
    shutil.copytree(ckpt / "snapshots", snap_tmp)
else:
    snap_tmp.mkdir(parents=True)
shutil.rmtree(out.snapshots, ignore_errors=True)
snap_tmp.rename(out.snapshots)
