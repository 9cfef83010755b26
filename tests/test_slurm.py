"""The workflow's tiny configuration on a real one-node SLURM cluster, through
profiles/slurm: stages 1-4 (data, models, IRIs, judgments; the analysis stage
adds a dozen short jobs and minutes of scheduling, not another code path), every
job submitted with sbatch, training asks for a GPU
(declared to SLURM), one training job is cancelled mid-way and must resume from
its last epoch on Snakemake's retry, a second invocation has nothing to do, and
the cluster is taken down at the end.

The cluster needs root and Debian's slurm packages (tests/slurm_cluster.py
installs them with apt-get when missing). Where that is impossible the tests
fail under CI (the environment variable CI is set) and are skipped otherwise."""

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, SNAKEMAKE, run_snakemake
from iriflow.io import read_json
from slurm_cluster import LocalSlurm, config_conflict, ensure_installed
from test_pipeline import TINY

TARGETS = ("models", "iris", "judgments")
KILLED = "resnet18-ce-none-s0"  # the training job cancelled after its first epoch
DATASET = "mnist5k"


def slurm_config() -> dict:
    cfg = copy.deepcopy(TINY)
    # training (and its evaluation) asks SLURM for a GPU; small memory requests fit any node
    cfg["models"]["resources"] = {"gpu": 1, "threads": 1, "mem_mb": 1500, "runtime": 20}
    cfg["models"]["train"]["epochs"] = 4
    cfg["iris"]["resources"] = {"gpu": 0, "threads": 1, "mem_mb": 1500, "runtime": 20}
    return cfg


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (failing because CI is set)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster():
    reason = ensure_installed() or config_conflict()
    if reason:
        _unavailable(reason)
    slurm = LocalSlurm(gpus=1).up()
    yield slurm
    slurm.down()


def _snakemake_cmd(work: Path, cfg: Path, *extra: str) -> list[str]:
    return [
        SNAKEMAKE,
        *TARGETS,
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(work),
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        *extra,
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        str(cfg),
    ]


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """Run the tiny workflow on the cluster, cancel one training job after its
    first epoch, and let Snakemake's retry finish it."""
    work = tmp_path_factory.mktemp("slurm")
    cfg = work / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(slurm_config()))
    env = cluster.env
    log = open(work / "snakemake.log", "w")
    proc = subprocess.Popen(
        _snakemake_cmd(work, cfg), cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    checkpoint = work / "results" / "checkpoints" / DATASET / KILLED / "last.pt"
    cancelled = None
    deadline = time.monotonic() + 600
    try:
        while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
            if checkpoint.exists():  # written atomically after every epoch
                running = [
                    j
                    for j in cluster.jobs()
                    if j["state"] == "RUNNING" and "train_model" in j["comment"] and KILLED in j["comment"]
                ]
                if running:
                    cluster.cancel(running[0]["id"])
                    cancelled = running[0]
            time.sleep(0.2)
        rc = proc.wait(timeout=max(60.0, deadline + 300 - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        log.close()
    output = (work / "snakemake.log").read_text()
    if rc != 0:
        raise AssertionError(f"snakemake on SLURM failed ({rc}):\n{output[-6000:]}\n{cluster.logs()}")
    assert cancelled is not None, (
        f"the training job of {KILLED} was never seen running after its first epoch:\n{output[-3000:]}"
    )
    return {"work": work, "cfg": cfg, "env": env, "output": output, "cancelled": cancelled, "jobs": cluster.jobs()}


def _planned_jobs(output: str) -> dict[str, int]:
    """Job counts per rule from the "Job stats" table Snakemake printed first."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_every_job_ran_as_a_slurm_job(slurm_run):
    jobs = pd.DataFrame(slurm_run["jobs"])
    # Snakemake's SLURM plugin comments each job "rule_<rule>[_wildcards_<values>]"
    jobs["rule"] = jobs["comment"].str.replace(r"^rule_", "", regex=True).str.replace(r"_wildcards_.*$", "", regex=True)
    planned = _planned_jobs(slurm_run["output"])
    for target in TARGETS:  # target rules have no action: nothing is submitted for them
        planned.pop(target)
    submitted = jobs["rule"].value_counts().to_dict()
    # every planned job was one SLURM job, the cancelled training job twice (its retry)
    assert submitted == {r: n + (r == "train_model") for r, n in planned.items()}, (submitted, planned)
    states = jobs.groupby("state").size().to_dict()
    assert states == {"COMPLETED": len(jobs) - 1, "CANCELLED": 1}, states
    # outputs say which SLURM job made them
    iri = read_json(slurm_run["work"] / f"results/iris/{DATASET}/{KILLED}/penultimate/regfree/provenance.json")
    assert iri["placement"]["slurm_job_id"] in set(jobs["id"])
    assert "cuda_visible_devices" not in iri["placement"]  # IRI jobs asked for no GPU


def test_training_job_was_granted_the_gpu(slurm_run):
    for model in (KILLED, "resnet18-ce-adv_l2-s0"):
        info = read_json(slurm_run["work"] / f"results/models/{DATASET}/{model}/model.json")
        # SLURM granted the declared GPU (device 0) to the job ...
        assert info["placement"]["cuda_visible_devices"] == "0", info["placement"]
        # ... which has no CUDA hardware behind it, so the code fell back to the CPU
        assert info["device"].startswith("cpu")
        log = (slurm_run["work"] / f"results/logs/models/{DATASET}/{model}/train.log").read_text()
        assert "granted GPU(s) 0 but torch sees no CUDA device" in log


def test_cancelled_training_resumed_and_equals_an_uninterrupted_run(slurm_run, tmp_path):
    work = slurm_run["work"]
    info = read_json(work / f"results/models/{DATASET}/{KILLED}/model.json")
    assert info["resumed_from_epoch"] >= 1 and info["epochs"] == 4, info
    assert "resumed from" in (work / f"results/logs/models/{DATASET}/{KILLED}/train.log").read_text()
    metrics = pd.read_csv(work / f"results/models/{DATASET}/{KILLED}/metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    # the same model trained without interruption, locally, is identical
    run_snakemake(
        f"results/models/{DATASET}/{KILLED}/model.pt",
        "--cores",
        "1",
        "-d",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(slurm_run["cfg"]),
    )
    resumed = torch.load(work / f"results/models/{DATASET}/{KILLED}/model.pt", weights_only=True)
    straight = torch.load(tmp_path / f"results/models/{DATASET}/{KILLED}/model.pt", weights_only=True)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed), "resumed weights differ"


def test_second_invocation_has_nothing_to_do(slurm_run):
    proc = subprocess.run(
        _snakemake_cmd(slurm_run["work"], slurm_run["cfg"], "-n"),
        cwd=slurm_run["work"],
        env=slurm_run["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_cluster_comes_down_cleanly(cluster, slurm_run):
    procs = dict(cluster.procs)
    cluster.down()
    assert all(p.poll() is not None for p in procs.values())
    assert not cluster.root.exists() and not cluster.conf.exists()
    alive = subprocess.run(["pgrep", "-f", str(cluster.root)], capture_output=True, text=True).stdout
    assert not alive.strip(), f"processes of the test cluster still running: {alive}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
