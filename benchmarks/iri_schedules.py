"""IRI settings compared on the default run's trained models (issue 15):
per model x IRI loss x seed type, the share of converged IRIs, the median
relative representation distance, how far the IRIs moved from their seeds
and how close they came to their targets (the simulated observers'
perceptual distances), and the CPU seconds of the optimisation. Not a test:

    ./run python benchmarks/iri_schedules.py --results RESULTS \\
        [--models resnet18-ce-adv_l2-s0,...] [--losses regfree,tv-l6] \\
        [--set steps=400 --set step_size=8.0 ...] [--out FILE.csv]

RESULTS is the results folder of a default run whose models are trained
(`./run snakemake --config results=RESULTS -- models`); --set overrides an
iris.* key of config/config.yaml (a YAML value), so each call measures one
setting against the same models, targets and seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from iriflow.config import iri_settings, observer_metrics, validate_config
from iriflow.iri import job_inputs, run_job
from iriflow.metrics import get_metric
from iriflow.models import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--models", default="", help="comma-separated model names (default: all trained ones)")
    ap.add_argument("--losses", default="regfree,tv-l6")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override iris.KEY")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for item in args.set:
        key, value = item.split("=", 1)
        raw["iris"][key] = yaml.safe_load(value)
    raw["results"] = args.results
    cfg = validate_config(raw, ROOT / "config/schema/config.schema.yaml")
    res = Path(args.results)
    dataset = "mnist5k"
    models = args.models.split(",") if args.models else sorted(p.name for p in (res / "models" / dataset).iterdir())
    metrics = observer_metrics(cfg)
    rows = []
    for loss in args.losses.split(","):
        s = iri_settings(cfg, loss)
        for seed_type in cfg["iris"]["seed_types"]:
            (inputs,) = job_inputs(
                res / f"data/{dataset}/dataset.npz", res / f"targets/{dataset}/targets.npz", [seed_type], 0
            )
            for name in models:
                model_dir = res / "models" / dataset / name
                model = load_model(model_dir / "model.pt", model_dir / "model.json")
                cpu = time.process_time()
                (result,), _ = run_job(model, "penultimate", [inputs], s, torch.device("cpu"))
                cpu = time.process_time() - cpu
                row = {
                    "label": args.label,
                    "model": name,
                    "loss": loss,
                    "seed_type": seed_type,
                    "converged": float(result.converged.float().mean()),
                    "median_rel_dist": float(result.rel_dist.median()),
                    "cpu_s": round(cpu, 1),
                }
                with torch.no_grad():
                    for m in metrics:
                        d = get_metric(m)
                        row[f"{m}_to_seed"] = float(d(result.iris, inputs.seeds).median())
                        row[f"{m}_to_target"] = float(d(result.iris, inputs.targets).median())
                rows.append(row)
                print(
                    " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True
                )
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.4g")
    print(table.groupby(["loss", "seed_type"])[["converged", "cpu_s"]].agg(["min", "mean", "sum"]).to_string())


if __name__ == "__main__":
    main()
