"""Rule models_table: one row per model with its factors and accuracies."""

import pandas as pd

from iriflow.io import atomic_path, read_json
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
rows = []
for eval_path, info_path in zip(snakemake.input.evaluations, snakemake.input.infos):
    ev, info = read_json(eval_path), read_json(info_path)
    dataset = info["id"].split("/", 1)[0]
    spec = info["spec"]
    row = {
        "model_id": info["id"],
        "dataset": dataset,
        "arch": spec["arch"],
        "width": spec["width"],
        "objective": info["objective_name"],
        "objective_kind": info["objective"]["kind"],
        "augmentation": info["augmentation"],
        "seed": info.get("seed"),
        "epochs": info.get("epochs"),
        "clean_acc": ev["clean_acc"],
        "probe_train_acc": info.get("probe_train_acc"),
        "n_test": ev["n_test"],
        "train_seconds": info.get("wall_time_s"),
    }
    row.update({k: v for k, v in ev.items() if k.startswith("robust_acc_")})
    rows.append(row)
table = pd.DataFrame(rows).sort_values("model_id")
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
ctx.log.info("%d models\n%s", len(table), table.to_string(index=False))
