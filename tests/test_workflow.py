"""The workflow as a user drives it: dry-run plans, lint, and a real run of
the data stage on mnist5k (twice, to check the bytes are identical)."""

import re

import numpy as np
import pytest
import yaml

from conftest import ROOT, SCHEMA, run_snakemake
from iriflow.config import merge, model_grid, model_ids, model_settings, validate_config
from iriflow.datasets import load_prepared
from iriflow.io import load_npz, read_json
from iriflow.snapshots import snapshot_epochs


def config_of(*names: str) -> dict:
    """The validated config of config/<name> files, merged in order (as --configfile does)."""
    cfg: dict = {}
    for name in names:
        cfg = merge(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    return validate_config(cfg, SCHEMA)


def iri_jobs(cfg: dict) -> dict[str, int]:
    """The IRI jobs a config plans: one generate_iris job per model x layer x
    IRI loss (its sets: one per seed type), one checkpoint_iris job per
    SimCLR model with a snapshot before its last epoch (the last snapshot's
    IRIs are the IRI stage's)."""
    iris = cfg["iris"]
    snapshots = [snapshot_epochs(model_settings(cfg, m)["recipe"]) for m in model_grid(cfg)]
    return {
        "generate_iris": len(model_ids(cfg)) * len(iris["layers"]) * len(iris["losses"]),
        "checkpoint_iris": sum(len(e) > 1 for e in snapshots),
    }


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def planned_jobs(output: str) -> list[dict[str, str]]:
    """Each planned job of a dry run as {'rule': ..., 'wildcards': ..., 'resources': ...}."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, flags=re.M))
            jobs.append({"rule": m.group(1), **fields})
    return jobs


def test_dry_run_default_config(tmp_path):
    proc = run_snakemake("-n", "-d", str(tmp_path))
    counts = job_counts(proc.stdout)
    assert counts["prepare_dataset"] == 1 and counts["select_targets"] == 1
    # 2 archs x (ce x {standard, adv_l2} + simclr x {simclr, simclr_adv})
    assert counts["train_model"] == 8 and counts["evaluate_model"] == 8
    # one IRI job per model x layer x IRI loss (8 x 1 x 3), each making 2 sets (one per seed type)
    expected = iri_jobs(config_of("config.yaml"))
    assert counts["generate_iris"] == expected["generate_iris"] and counts["iri_summary"] == 1
    n_models = len(model_ids(config_of("config.yaml")))
    assert proc.stdout.count("/penultimate/regfree/other-image/iris.npz") >= n_models  # a set per job
    assert counts["simulate_judgments"] == 8 and counts["score_alignment"] == 1
    assert counts["calibrate_observers"] == counts["validate_observers"] == 1  # one per dataset
    # analysis: one job per SimCLR model for the IRIs of its snapshots (epoch 2 of 4; the last
    # snapshot is the final network, whose IRIs the IRI stage made), one job per table and figure
    assert counts["checkpoint_iris"] == expected["checkpoint_iris"] and counts["checkpoint_judgments"] == 1
    for rule in (
        "proxy_scores",
        "model_scores",
        "statistics",
        "alignment_table",
        "proxy_table",
        "figure_iri_grids",
        "figure_alignment",
        "figure_adversarial",
        "figure_checkpoints",
        "figure_accuracy",
        "figure_proxies",
        "power",
    ):
        assert counts[rule] == 1, rule
    # human similarity judgments: the data, the ceiling and triplets, 8 models x 1 layer, one pixel
    # baseline per dataset, the table and the figure
    assert counts["rsa_model"] == 8 and counts["rsa_baseline"] == 1
    for rule in ("rsa_data", "rsa_human", "rsa_table", "figure_rsa"):
        assert counts[rule] == 1, rule
    # Engstrom et al. 2019: one job per procedure for all models, one for the three figures
    for rule in ("feature_visualisation", "feature_addition", "interpolation", "figure_engstrom"):
        assert counts[rule] == 1, rule
    assert counts["all"] == 1


def test_dry_run_paper_config_plans_the_full_grid_with_gpus(tmp_path):
    # planned as on a cluster: under the SLURM profile (the plugin turns gpu=1 into --gpus=1)
    proc = run_snakemake(
        "-n",
        "-d",
        str(tmp_path),
        "--profile",
        str(ROOT / "profiles/slurm"),
        "--configfile",
        str(ROOT / "config/paper.yaml"),
    )
    assert "Using profiles" in proc.stdout + proc.stderr and "profiles/slurm" in proc.stdout + proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["prepare_dataset"] == 2 and counts["select_targets"] == 2
    assert counts["train_model"] == 84 and counts["evaluate_model"] == 84
    # one IRI job per model x layer x loss (84 x 1 x 6), at most 504 (issue 15), 6 seed types each
    expected = iri_jobs(config_of("config.yaml", "paper.yaml"))
    assert counts["generate_iris"] == expected["generate_iris"] <= 504 and counts["simulate_judgments"] == 84
    assert counts["calibrate_observers"] == counts["validate_observers"] == 2
    # one job per SimCLR model (12) for its 19 snapshots (every 50 of 1000 epochs, the last one reused)
    assert counts["checkpoint_iris"] == expected["checkpoint_iris"]
    assert counts["statistics"] == 1
    assert counts["rsa_model"] == 84 and counts["rsa_baseline"] == 2 and counts["rsa_table"] == 1
    assert "results/data/cifar100/dataset.npz" in proc.stdout
    jobs = planned_jobs(proc.stdout)
    gpu_rules = {j["rule"] for j in jobs if "gpu=1" in j.get("resources", "")}
    assert gpu_rules == {
        "train_model",
        "evaluate_model",
        "generate_iris",
        "checkpoint_iris",
        "proxy_scores",
        "feature_visualisation",
        "feature_addition",
        "interpolation",
    }
    train = [j for j in jobs if j["rule"] == "train_model"]
    assert len(train) == 84 and all("gpu=1" in j["resources"] for j in train)
    assert all("mem_mb=32000" in j["resources"] for j in train)


def test_lint_is_clean(tmp_path):
    proc = run_snakemake("--lint", "-d", str(tmp_path))
    text = proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in text, text[-3000:]


def test_schema_is_read_as_the_reference_yaml_loader_reads_it():
    # Every snakemake start-up reads the schema with libyaml's loader (faster); the
    # defaults it fills go into jobs' params (rerun triggers), so it must yield exactly
    # what PyYAML's pure-Python safe loader yields: same keys, order and value types.
    import yaml

    from iriflow.config import load_schema

    assert repr(load_schema(SCHEMA)) == repr(yaml.safe_load(SCHEMA.read_text()))


def test_bad_config_stops_before_any_job(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("targets:\n  n: -3\n")
    proc = run_snakemake(
        "-n", "-d", str(tmp_path), "--configfile", str(ROOT / "config/config.yaml"), str(override), check=False
    )
    assert proc.returncode != 0
    assert "targets.n: -3 is less than the minimum of 1" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def two_data_runs(tmp_path_factory):
    runs = []
    for name in ("run1", "run2"):
        work = tmp_path_factory.mktemp(name)
        proc = run_snakemake("data", "--cores", "2", "-d", str(work))
        runs.append((work, proc))
    return runs


DATA_FILES = [
    "results/data/mnist5k/dataset.npz",
    "results/data/mnist5k/meta.json",
    "results/targets/mnist5k/targets.npz",
    "results/targets/mnist5k/targets.png",
]


def test_data_stage_is_byte_identical_across_runs(two_data_runs):
    (a, _), (b, _) = two_data_runs
    for rel in DATA_FILES:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_data_stage_values(two_data_runs):
    work, _ = two_data_runs[0]
    prep = load_prepared(work / "results/data/mnist5k/dataset.npz")
    assert np.bincount(prep.train_y).tolist() == [400] * 10
    assert np.bincount(prep.test_y).tolist() == [100] * 10
    meta = read_json(work / "results/data/mnist5k/meta.json")
    assert meta["n_test"] == 1000 and meta["shape"] == [1, 28, 28]
    targets = load_npz(work / "results/targets/mnist5k/targets.npz")
    assert np.bincount(targets["label"]).tolist() == [4] * 10  # default targets.n = 40
    np.testing.assert_array_equal(targets["images"], prep.test_x[targets["index"]])
    prov = read_json(work / "results/targets/mnist5k/provenance.json")
    assert prov["config"] == {"n": 40, "seed": 0} and prov["n_targets"] == 40
    assert prov["wall_time_s"] > 0
    log = (work / "results/logs/targets/mnist5k.log").read_text()
    assert "40 targets" in log


def test_second_invocation_has_nothing_to_do(two_data_runs):
    work, _ = two_data_runs[0]
    proc = run_snakemake("data", "--cores", "2", "-d", str(work))
    assert "Nothing to be done" in proc.stdout + proc.stderr
