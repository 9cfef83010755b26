"""Speed of the workflow's hot loops, as ratios measured in one run on one
machine (issue 8). Not part of the tests: run it by hand

    ./run python benchmarks/bench.py [--quick] [--out results/benchmarks/harness]

and it prints one table and writes <out>.csv and <out>.json. Each ratio has
the target it is judged against; wall-clock numbers are only comparable
within one run on one machine (the device is in the output).

1. IRI step / bare forward+backward of the same representation on the same batch
2. batched IRI generation (all targets at once) / a per-image loop, as a speed-up
3. PGD-k adversarial training step / standard training step, against 1.15 (k+1)
4. `snakemake -n` on the paper config: jobs planned (in all, generate_iris and
   checkpoint_iris) and seconds
5. the default run's job-seconds per stage, from Snakemake's benchmark files of
   the last run under results/benchmarks (run ./run workflow first); with
   --end-to-end DIR also the wall time of a whole default run into DIR (about
   half an hour on 2 CPU cores) and its own per-stage shares
6. training and IRI throughput (images/s) per architecture, default and paper widths
7. an IRI job of the default config (one model, layer and loss: every seed
   type's set in one batch) against one job per set: CPU seconds per IRI
   (process CPU time, the model load included) and the largest difference
   of a per-IRI relative distance between the two
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from iriflow.archs import build_model
from iriflow.config import iri_settings, validate_config
from iriflow.device import describe, select_device
from iriflow.iri import JobInputs, generate, run_job
from iriflow.losses import ce_attack_loss
from iriflow.models import frozen
from iriflow.optim import pgd
from iriflow.represent import representation

ROOT = Path(__file__).resolve().parents[1]

# (name, channels, size, width, stem_stride): the default config's models and the paper's
SCALES = {"default": (1, 28, 0.25, 2), "paper": (3, 32, 1.0, 1)}


def timeit(fn, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def model_at(arch: str, scale: str, device) -> torch.nn.Module:
    c, _, width, stride = SCALES[scale]
    torch.manual_seed(0)
    return build_model(arch, 10, c, [0.5] * c, [0.25] * c, width=width, stem_stride=stride).to(device).eval()


def batch(scale: str, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    c, s, _, _ = SCALES[scale]
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, c, s, s, generator=g).to(device), torch.arange(n).remainder(10).to(device)


def iri_ratios(arch: str, scale: str, n: int, steps: int, device, repeats: int) -> dict:
    plain = model_at(arch, scale, device).requires_grad_(False)
    rep = representation(frozen(plain))  # as in iriflow.iri.run_job: BatchNorms folded
    targets, _ = batch(scale, n, device)
    seeds = torch.rand(targets.shape, generator=torch.Generator().manual_seed(2)).to(device)

    with torch.no_grad():
        target_rep = rep(targets)

    def fwd_bwd(r=rep):  # what one IRI step cannot avoid: r(x) and its gradient with respect to x
        x = seeds.clone().requires_grad_(True)
        torch.autograd.grad((r(x) - target_rep).pow(2).sum(), x)

    def run(t, s):
        return generate(rep, t, s, {"kind": "regfree"}, steps=steps, step_size=1.0, log_every=10**9)

    bare = timeit(fwd_bwd, repeats)
    unfolded = timeit(lambda: fwd_bwd(representation(plain)), repeats)
    batched = timeit(lambda: run(targets, seeds), repeats)
    looped = timeit(lambda: [run(targets[i : i + 1], seeds[i : i + 1]) for i in range(n)], 1, warmup=0)
    return {
        "iri_step_s": batched / steps,
        "bare_fwd_bwd_s": bare,
        "iri_step_over_fwd_bwd": batched / steps / bare,
        "batched_speedup": looped / batched,
        "bn_fold_speedup": unfolded / bare,
        "iri_images_per_s": n * steps / batched,
    }


def train_ratios(arch: str, scale: str, n: int, k: int, device, repeats: int) -> dict:
    model = model_at(arch, scale, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = batch(scale, n, device)
    attack = {"norm": "l2", "eps": 1.0, "steps": k, "step_size": 0.5, "random_start": True}
    gen = torch.Generator().manual_seed(3)

    def step(adv: bool):
        xb = x
        if adv:
            model.eval()
            xb = pgd(ce_attack_loss(model, y), x, attack, generator=gen, evaluate_last=False).x
            model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), y).backward()
        opt.step()

    std = timeit(lambda: step(False), repeats)
    adv = timeit(lambda: step(True), repeats)
    return {
        "train_step_s": std,
        "pgd_step_s": adv,
        "pgd_over_standard": adv / std,
        "pgd_k": k,
        "train_images_per_s": n / std,
    }


def dry_run() -> dict:
    """`snakemake -n` on the paper config, twice: planning only (--quiet rules:
    the job table) and with every job printed (the default -n output, about a
    quarter slower: printing works out each job's resources)."""
    out = {}
    workdir = tempfile.mkdtemp(prefix="iriflow-bench-dry-")  # a plan only: nothing is written there
    for name, extra in (("quiet", ["--quiet", "rules"]), ("listing", [])):
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-n",
                *extra,
                "--configfile",
                str(ROOT / "config/paper.yaml"),
                "-d",
                workdir,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        out[f"paper_dry_run_{name}_s"] = time.perf_counter() - t
        text = proc.stdout + proc.stderr
        for rule in ("total", "generate_iris", "checkpoint_iris"):
            m = re.search(rf"^{rule}\s+(\d+)", text, re.M)
            out["paper_jobs" if rule == "total" else f"paper_{rule}_jobs"] = int(m.group(1)) if m else None
        out[f"rc_{name}"] = proc.returncode
    return out


def grouped_iri_job(steps: int | None = None) -> dict:
    """One IRI job of the default config (resnet18 at the default width, the
    first IRI loss, every seed type of iris.seed_types, its iris.steps unless
    ``steps``) in one batch, against one job per seed type; CPU seconds
    (process time, so that other load on the machine does not count) per IRI,
    a job's model set-up included, and the largest |difference| of a per-IRI
    relative distance. Targets and seeds are random images of the default
    size: the cost does not depend on what they show."""
    import yaml

    cfg = validate_config(
        yaml.safe_load((ROOT / "config/config.yaml").read_text()), ROOT / "config/schema/config.schema.yaml"
    )
    iris = cfg["iris"]
    s = iri_settings(cfg, iris["losses"][0])
    if steps:
        s["steps"] = steps
    n = cfg["targets"]["n"]
    targets, labels = batch("default", n, "cpu")
    sets = [
        JobInputs(
            kind,
            targets,
            labels,
            torch.arange(n).numpy(),
            torch.rand(targets.shape, generator=torch.Generator().manual_seed(i)),
        )
        for i, kind in enumerate(iris["seed_types"])
    ]

    torch.set_num_threads(iris["resources"]["threads"])  # as the job gets

    def job(group):
        t = time.process_time()
        model = model_at("resnet18", "default", "cpu")
        results, _ = run_job(model, "penultimate", group, s, "cpu", iris["max_batch"])
        return time.process_time() - t, results

    grouped_s, grouped = job(sets)
    alone = [job([one]) for one in sets]
    per_set_s = sum(t for t, _ in alone)
    diff = max(float((g.rel_dist - a[0].rel_dist).abs().max()) for g, (_, a) in zip(grouped, alone))
    n_iris = n * len(sets)
    return {
        "loss": s["loss"],
        "seed_types": len(sets),
        "iris": n_iris,
        "steps": s["steps"],
        "grouped_cpu_s_per_iri": grouped_s / n_iris,
        "per_set_cpu_s_per_iri": per_set_s / n_iris,
        "per_set_over_grouped": per_set_s / grouped_s,
        "max_rel_dist_difference": diff,
    }


def stage_shares(root: Path = ROOT / "results/benchmarks") -> dict:
    """Seconds per stage (the folder under results/benchmarks) summed over jobs."""
    per = {}
    for f in root.rglob("*.tsv"):
        rows = list(csv.DictReader(f.open(), delimiter="\t"))
        if rows:
            stage = f.relative_to(root).parts[0]
            per[stage] = per.get(stage, 0.0) + float(rows[-1]["s"])
    total = sum(per.values())
    return {stage: {"job_seconds": round(s, 1), "share": round(s / total, 3)} for stage, s in sorted(per.items())}


def end_to_end(work: Path, cores: int) -> dict:
    """Wall time of the default workflow from scratch into ``work`` (the
    environment already built), and its per-stage job-seconds."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), "-d", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"the default run into {work} failed:\n{proc.stderr[-3000:]}")
    m = re.findall(r"(\d+) of \d+ steps \(100%\) done", proc.stdout + proc.stderr)
    return {
        "wall_s": round(seconds, 1),
        "cores": cores,
        "jobs": int(m[-1]) if m else None,
        "stages": stage_shares(work / "results/benchmarks"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps (a smoke run)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--archs", default="resnet18,vgg16bn,densenet121,inceptionv3")
    ap.add_argument("--out", default=str(ROOT / "results/benchmarks/harness"))
    ap.add_argument("--end-to-end", metavar="DIR", help="also time a whole default run into DIR (slow)")
    ap.add_argument("--cores", type=int, default=2, help="cores for --end-to-end")
    args = ap.parse_args()
    device = select_device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    repeats, steps, n = (2, 5, 8) if args.quick else (5, 20, 40)
    rows = []
    for scale in SCALES:
        for arch in args.archs.split(","):
            r = {"arch": arch, "scale": scale, "batch": n}
            r.update(iri_ratios(arch, scale, n, steps, device, repeats))
            r.update(train_ratios(arch, scale, 128 if not args.quick else 16, 2, device, repeats))
            rows.append(r)
            print(
                f"{scale:8s} {arch:12s} IRI step/fwd+bwd {r['iri_step_over_fwd_bwd']:5.2f} (<= 1.2)  "
                f"batched speed-up {r['batched_speedup']:6.1f}x (>= 10)  "
                f"BN folded {r['bn_fold_speedup']:4.2f}x  "
                f"PGD-{r['pgd_k']}/standard {r['pgd_over_standard']:5.2f} (<= {1.15 * (r['pgd_k'] + 1):.2f})  "
                f"train {r['train_images_per_s']:8.0f} img/s  IRI {r['iri_images_per_s']:8.0f} img/s",
                flush=True,
            )
    summary = {
        "device": describe(device),
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "dry_run": dry_run(),
        "iri_job": grouped_iri_job(steps=50 if args.quick else None),
        "stages": stage_shares(),
        "rows": rows,
    }
    d = summary["dry_run"]
    print(
        f"snakemake -n, paper config: {d['paper_jobs']} jobs planned in {d['paper_dry_run_quiet_s']:.1f} s "
        f"(--quiet), {d['paper_dry_run_listing_s']:.1f} s with every job printed (target <= 10 s); "
        f"generate_iris {d['paper_generate_iris_jobs']} (target <= 504), checkpoint_iris {d['paper_checkpoint_iris_jobs']}"
    )
    g = summary["iri_job"]
    print(
        f"default IRI job ({g['loss']}, {g['seed_types']} seed types, {g['iris']} IRIs, {g['steps']} steps): "
        f"{g['grouped_cpu_s_per_iri']:.3f} CPU s per IRI in one batch, {g['per_set_cpu_s_per_iri']:.3f} with one job "
        f"per set ({g['per_set_over_grouped']:.2f}x); largest per-IRI rel_dist difference {g['max_rel_dist_difference']:.1e}"
    )
    for stage, s in summary["stages"].items():
        print(f"default run, stage {stage:10s} {s['job_seconds']:8.1f} job-s  {100 * s['share']:5.1f}%")
    if args.end_to_end:
        summary["end_to_end"] = e2e = end_to_end(Path(args.end_to_end), args.cores)
        print(
            f"default run end to end: {e2e['jobs']} jobs in {e2e['wall_s'] / 60:.1f} min on "
            f"{e2e['cores']} cores (target <= 5 min)"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
