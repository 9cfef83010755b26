"""Bad input is refused before any job runs, naming the file, the key path or
the row and column, and what was expected; good results are never lost.

Two batteries run in-process through the library's one validation
(iriflow.config.plan_config, as rules/common.smk calls it): bad config files
(each a user's overlay, case.yaml, on top of config/config.yaml) and bad
response files. A handful of cases then go through `snakemake -n` to show the
wiring (refused while planning, nothing written under results/), and real
runs show that a bad response file leaves earlier results byte-identical,
that a corrupt training checkpoint is moved aside, and that temporaries of
killed writes are removed."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, SCHEMA, run_snakemake
from iriflow import io as iio
from iriflow.catalog import ARCH_LAYERS, ARCH_NAMES, DATASET_NAMES
from iriflow.config import (
    ConfigError,
    Environment,
    coerce_overrides,
    load_schema,
    merge,
    plan_config,
    run_executor,
)
from iriflow.judgments import build_trials, simulate_population
from iriflow.responses import ResponseError, check_response_file, load_response_files, load_responses
from test_train import RECIPE as TRAIN_RECIPE
from test_train import make_trainer, toy_data

DEFAULT = ROOT / "config" / "config.yaml"
GRID_ID = "mnist5k/resnet18-ce-standard-s0"
IMAGEFOLDER_GRID = """
models:
  grid:
    - {datasets: [imagefolder], archs: [resnet18], objectives: [ce], augmentations: [standard]}
"""
REAL = "judgments:\n  observers:\n    real:\n      responses: [{files}]\n"


@pytest.fixture(scope="module")
def schema():
    return load_schema(SCHEMA)


# --- the bad-config battery -----------------------------------------------------------
# (name, case.yaml text, substrings the message must hold: the key path first).
# Files the cases name live in the working directory made by ``workdir``.

BAD_CONFIGS = [
    # issue 14, "the dry run passes, then a job fails"
    ("layer9", "iris: {layers: [layer9]}", ["iris.layers[0]: 'layer9' is not a layer of resnet18, vgg16bn"]),
    ("stir layer", "analysis: {stir: {layer: layer9}}", ["analysis.stir.layer: 'layer9' is not a layer of"]),
    ("rsa layer", "rsa: {layers: [block5]}", ["rsa.layers[0]: 'block5' is not a layer of resnet18"]),
    (
        "checkpoint layer",
        "analysis: {checkpoints: {layer: layer3}}",
        ["analysis.checkpoints.layer: 'layer3' is not a layer of vgg16bn", "expected a layer every model has"],
    ),
    (
        "external layer",
        "models: {external: {mnist5k/ext-inc: {path: ext.pt, arch: inceptionv3}}}\niris: {layers: [layer4]}",
        ["iris.layers[0]: 'layer4' is not a layer of inceptionv3, vgg16bn", "mnist5k/ext-inc"],
    ),
    (
        "proxy foo",
        "analysis: {proxy: {metrics: [ssim, foo]}}",
        ["analysis.proxy.metrics[1]: 'foo' is not a registered"],
    ),
    ("device cuda", "device: cuda", ["device: 'cuda', but torch sees no CUDA device", "expected 'auto'"]),
    ("imagefolder null", IMAGEFOLDER_GRID, ["data.imagefolder.path: is not set", "uses the dataset imagefolder"]),
    (
        "imagefolder missing",
        IMAGEFOLDER_GRID + "data: {imagefolder: {path: no_such_folder}}",
        ["data.imagefolder.path: 'no_such_folder' does not exist (relative to the working directory"],
    ),
    (
        "imagefolder one class",
        IMAGEFOLDER_GRID + "data: {imagefolder: {path: one_class}}",
        ["data.imagefolder.path: ", "one_class has 1 class subfolder(s); expected at least 2"],
    ),
    (
        "imagefolder empty class",
        IMAGEFOLDER_GRID + "data: {imagefolder: {path: empty_class}}",
        ["data.imagefolder.path: class folder ", "empty_class/dog holds no image"],
    ),
    (
        "imagefolder a file",
        IMAGEFOLDER_GRID + "data: {imagefolder: {path: ext.pt}}",
        ["data.imagefolder.path: 'ext.pt' is a file"],
    ),
    (
        "external missing",
        "models: {external: {mnist5k/ext-a: {path: missing.pt, arch: resnet18}}}",
        ["models.external.mnist5k/ext-a.path: 'missing.pt' is not a file", "expected the checkpoint"],
    ),
    (
        "catch >= trials",
        "survey: {trials_per_participant: 5, catch_per_participant: 6}",
        ["survey.catch_per_participant: 6 catch trials fill all 5 screens", "expected at most 4"],
    ),
    (
        "catch == trials",
        "survey: {trials_per_participant: 6, catch_per_participant: 6}",
        ["survey.catch_per_participant: 6 catch trials fill all 6 screens", "expected at most 5"],
    ),
    (
        "grid emptied",
        "models: {exclude: [{dataset: mnist5k}]}",
        ["models.exclude: excludes all 8 models of models.grid", "expected at least one model left"],
    ),
    # issue 14, "accepted silently"
    ("results empty", 'results: ""', ["results: '' is empty"]),
    ("results root", "results: /", ["results: '/' is the filesystem root"]),
    ("results dot", "results: .", ["results: '.' is the working directory", "a folder of its own"]),
    ("results parent", "results: ..", ["results: '..' is the working directory or a folder above it"]),
    ("results braces", "results: out{x}", ["results: 'out{x}' has braces"]),
    ("threshold 5", "iris: {threshold: 5.0}", ["iris.threshold: 5.0 is greater than or equal to the maximum of 1"]),
    ("threshold 1", "iris: {threshold: 1}", ["iris.threshold: 1 is greater than or equal to the maximum of 1"]),
    ("threshold 0", "iris: {threshold: 0}", ["iris.threshold: 0 is less than or equal to the minimum of 0"]),
    ("max_batch 0", "iris: {max_batch: 0}", ["iris.max_batch: 0 is less than the minimum of 1"]),
    (
        "momentum adam",
        "iris: {optimizer: adam, momentum: 0.9}",
        ["iris.momentum: is 0.9, but iris.optimizer is 'adam'", "expected 0 or optimizer: normalized"],
    ),
    ("momentum 1", "iris: {momentum: 1.0}", ["iris.momentum: 1.0 is greater than or equal to the maximum of 1"]),
    (
        "coarse_to_fine falls",
        "iris: {coarse_to_fine: [0.5, 0.25]}",
        ["iris.coarse_to_fine: is [0.5, 0.25]: expected fractions of the steps that strictly rise"],
    ),
    ("coarse_to_fine 0", "iris: {coarse_to_fine: [0, 0.5]}", ["iris.coarse_to_fine[0]: 0 is less than or equal to"]),
    (
        "primary observer",
        "analysis: {primary: {observer: 'simulated:lpips'}}",
        ["analysis.primary.observer: 'simulated:lpips' is not an observer of this run", "'simulated:ssim'"],
    ),
    (
        "primary real",
        "analysis: {primary: {observer: real}}",
        ["analysis.primary.observer: 'real' is not an observer", "no judgments.observers.real.responses"],
    ),
    (
        "exclude no match",
        "models: {exclude: [{arch: densenet121}]}",
        ["models.exclude[0]: {'arch': 'densenet121'} matches no model of models.grid"],
    ),
    (
        "exclude typo",
        "models: {exclude: [{arch: resnet18, augmentation: adv-l2}]}",
        ["models.exclude[0]: ", "matches no model", "e.g. {'arch': 'resnet18'"],
    ),
    (
        "duplicate top-level",
        "models: {width: 0.5}\niris: {steps: 10}\nmodels: {width: 1.0}\n",
        ["case.yaml: line 3: key models is given twice (first at line 1)", "silently dropping the first"],
    ),
    (
        "duplicate nested",
        "iris:\n  steps: 10\n  threshold: 0.2\n  steps: 20\n",
        ["case.yaml: line 4: key iris.steps is given twice (first at line 2)"],
    ),
    (
        "duplicate in list item",
        "models:\n  grid:\n    - datasets: [mnist5k]\n      archs: [resnet18]\n      archs: [vgg16bn]\n",
        ["case.yaml: line 5: key models.grid[0].archs is given twice (first at line 4)"],
    ),
    # issue 14, "no file, key or line named"
    ("yaml syntax", "iris:\n  steps: [10,\n", ["case.yaml: line 3, column 1: not valid YAML"]),
    ("yaml tabs", "iris:\n\tsteps: 10\n", ["case.yaml: line 2, column 1: not valid YAML"]),
    ("yaml unclosed quote", 'results: "abc\n', ["case.yaml: line 2, column 1: not valid YAML"]),
    ("empty config", "", ["case.yaml: the file is empty; expected a mapping of configuration keys"]),
    ("only a comment", "# nothing here\n", ["case.yaml: the file is empty"]),
    ("top-level list", "- results\n- models\n", ["case.yaml: line 1: the top level is a list"]),
    ("top-level scalar", "results\n", ["case.yaml: line 1: the top level is the single value 'results'"]),
    ("not utf-8", b"results: caf\xe9\n", ["case.yaml: line 1, column 13: byte 12 is not UTF-8"]),
    (
        "external = grid id",
        f"models: {{external: {{{GRID_ID}: {{path: ext.pt, arch: resnet18}}}}}}",
        [f"models.external.{GRID_ID}: is also a model of models.grid"],
    ),
    (
        "examples unknown",
        "analysis: {examples: {standard: mnist5k/nope-ce-standard-s0, robust: mnist5k/resnet18-ce-adv_l2-s0}}",
        ["analysis.examples.standard: 'mnist5k/nope-ce-standard-s0' is not a model of this run"],
    ),
    (
        "examples one of two",
        f"analysis: {{examples: {{standard: {GRID_ID}}}}}",
        ["analysis.examples.robust: is empty while analysis.examples.standard is set"],
    ),
    (
        "examples same",
        f"analysis: {{examples: {{standard: {GRID_ID}, robust: {GRID_ID}}}}}",
        ["analysis.examples.robust: is the standard model too"],
    ),
    ("post_url wildcard", "survey: {post_url: 'https://*'}", ["survey.post_url: 'https://*': the host '*'"]),
    (
        "post_url wildcard subdomain",
        "survey: {post_url: 'https://*.example.org/x'}",
        ["survey.post_url: 'https://*.example.org/x': the host '*.example.org'"],
    ),
    (
        "post_url userinfo",
        "survey: {post_url: 'https://me:pw@example.org/'}",
        ["survey.post_url: ", "'me:pw@example.org'"],
    ),
    (
        "post_url port",
        "survey: {post_url: 'https://example.org:port/'}",
        ["survey.post_url: 'https://example.org:port/'"],
    ),
    # the raises that lived in the rules
    (
        "examples seed type",
        "analysis: {examples: {seed_type: white}}",
        ["analysis.examples.seed_type: 'white' is not among iris.seed_types"],
    ),
    (
        "checkpoint loss",
        "analysis: {checkpoints: {loss: magic}}",
        ["analysis.checkpoints.loss: 'magic' is neither a registered IRI loss"],
    ),
    (
        "things without images",
        "rsa: {things: {triplets: triplets.txt}}",
        ["rsa.things.images: is not set, but rsa.things.triplets is"],
    ),
    # more
    (
        "things missing",
        "rsa: {things: {triplets: nope.txt, images: nope_dir}}",
        ["rsa.things.triplets: 'nope.txt' is not a file", "rsa.things.images: 'nope_dir' does not exist"],
    ),
    (
        "rsa cache without the files",
        "rsa: {cache: one_class, download: false}",
        ["rsa.cache: 'one_class' (relative to the working directory", "lacks 92_behavRDMs.mat"],
    ),
    (
        "responses twice",
        REAL.format(files="good.csv, ./good.csv"),
        ["judgments.observers.real.responses[1]: './good.csv' is listed twice (also as [0])"],
    ),
    (
        "responses missing",
        REAL.format(files="absent.csv"),
        ["judgments.observers.real.responses[0]: ", "absent.csv: no such file"],
    ),
    (
        "responses bad code",
        REAL.format(files="good.csv, script.csv"),
        ["judgments.observers.real.responses[1]: ", "script.csv: row 1 (line 2), column 'participant'"],
    ),
    (
        "measure without its trials",
        "judgments: {alternatives: [other-target]}\nanalysis: {primary: {measure: '2afc:seed'}}",
        ["analysis.primary.measure: '2afc:seed' needs 2AFC trials with the 'seed' alternative"],
    ),
    (
        "external dataset",
        "models: {external: {svhn/ext-a: {path: ext.pt, arch: resnet18}}}",
        ["models.external.svhn/ext-a: dataset 'svhn' is not a dataset"],
    ),
    (
        "external arch",
        "models: {external: {mnist5k/ext-a: {path: ext.pt, arch: resnet19}}}",
        ["models.external.mnist5k/ext-a.arch: 'resnet19' is not a registered architecture"],
    ),
    (
        "observer twice",
        "judgments: {observers: {simulated: [{metric: ssim}, {metric: ssim}]}}",
        ["judgments.observers.simulated[1]: observer name 'ssim' is used twice"],
    ),
    ("unknown key", "colour: red", ["colour: unknown key 'colour'"]),
    ("misspelt key", "iris: {step: 10}", ["iris.step: unknown key 'step'"]),
    ("string for integer", "targets: {n: '20'}", ["targets.n: '20' is not of type 'integer'"]),
    (
        "unknown arch",
        "models: {grid: [{datasets: [mnist5k], archs: [resnet19], objectives: [ce], augmentations: [standard]}]}",
        ["models.grid[0].archs[0]: 'resnet19' is not defined"],
    ),
    (
        "undefined objective",
        "models: {grid: [{datasets: [mnist5k], archs: [resnet18], objectives: [byol], augmentations: [standard]}]}",
        ["models.grid[0].objectives[0]: 'byol' is not defined"],
    ),
    (
        "undefined base",
        "models: {augmentations: {adv_l2: {kind: adversarial, base: nope, attack: {norm: l2, eps: 1}}}}",
        ["models.augmentations.adv_l2.base: 'nope' is not a defined augmentation"],
    ),
    (
        "adversarial base",
        "models: {augmentations: {adv_l2: {kind: adversarial, base: simclr_adv, attack: {norm: l2, eps: 1}}}}",
        ["models.augmentations.adv_l2.base: 'simclr_adv' is itself adversarial"],
    ),
    ("unknown loss", "iris: {losses: [regfree, magic]}", ["iris.losses[1]: 'magic' is neither a registered loss"]),
    ("unknown seed type", "iris: {seed_types: [pink-noise]}", ["iris.seed_types[0]: 'pink-noise' is not one of"]),
    (
        "observer metric",
        "judgments: {observers: {simulated: [{metric: ssmi}]}}",
        ["judgments.observers.simulated[0].metric: 'ssmi' is not a registered metric"],
    ),
    ("iris metric", "iris: {metric: psnr}", ["iris.metric: 'psnr' is not a registered metric"]),
    ("width 0", "models: {width: 0}", ["models.width: 0 is less than or equal to the minimum of 0"]),
    ("test fraction", "data: {mnist5k: {test_fraction: 1.5}}", ["data.mnist5k.test_fraction: 1.5"]),
    ("no alternatives", "judgments: {alternatives: []}", ["judgments.alternatives: [] should be non-empty"]),
    ("level 1", "analysis: {bootstrap: {level: 1.0}}", ["analysis.bootstrap.level: 1.0 is greater than or equal"]),
    ("image px", "survey: {image_px: 8}", ["survey.image_px: 8 is less than the minimum of 16"]),
    (
        "rsa layers twice",
        "rsa: {layers: [penultimate, penultimate]}",
        ["rsa.layers: ['penultimate', 'penultimate'] has non-unique"],
    ),
    ("device gpu", "device: gpu", ["device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"]),
    (
        "grid dataset",
        "models: {grid: [{datasets: [svhn], archs: [resnet18], objectives: [ce], augmentations: [standard]}]}",
        ["models.grid[0].datasets[0]: 'svhn' is not one of"],
    ),
]

# cases planned under a cluster executor: device cuda needs GPUs there
CLUSTER_CASES = [
    (
        "cuda on slurm without gpus",
        "device: cuda",
        [
            "models.resources.gpu: is 0, but device is 'cuda' and the jobs run under the executor 'slurm'",
            "iris.resources.gpu: is 0",
        ],
    ),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The working directory of the cases: the files they name."""
    work = tmp_path_factory.mktemp("bad-configs")
    (work / "ext.pt").write_bytes(b"not used")
    (work / "one_class" / "cat").mkdir(parents=True)
    (work / "one_class" / "cat" / "a.png").write_bytes(b"")
    for c in ("cat", "dog"):
        (work / "empty_class" / c).mkdir(parents=True)
    (work / "empty_class" / "cat" / "a.png").write_bytes(b"")
    (work / "empty_class" / "dog" / "notes.txt").write_text("no image here")
    (work / "triplets.txt").write_text("0 1 2\n")
    header = ["participant", "set_id", "trial_id", "response"]
    for name, who in (("good.csv", "anna"), ("script.csv", "<script>x</script>")):
        with open(work / name, "w", newline="") as f:
            csv.writer(f).writerows([header, [who, "S", "S/2afc-seed/0", 0]])
    return work


def refusal(schema, workdir, text, executor="local") -> str | None:
    """The message plan_config refuses case.yaml (on top of the default
    config) with, planned in ``workdir``; None if it is accepted."""
    case = workdir / "case.yaml"
    case.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())
    config = yaml.safe_load(DEFAULT.read_text())
    try:
        overlay = yaml.safe_load(case.read_bytes())
    except (yaml.YAMLError, UnicodeDecodeError):
        overlay = None  # Snakemake itself would not get this far
    if isinstance(overlay, dict):
        merge(config, overlay)
    env = Environment(executor=executor, cuda=False)
    cwd = os.getcwd()
    os.chdir(workdir)  # relative paths are relative to where snakemake runs
    try:
        plan_config(config, schema, [DEFAULT, case], {}, env)
    except ConfigError as e:
        return str(e)
    finally:
        os.chdir(cwd)
    return None


def run_battery(cases, check) -> tuple[int, list[str]]:
    refused, failures = 0, []
    for name, *rest in cases:
        problem = check(*rest)
        if problem:
            failures.append(f"{name}: {problem}")
        else:
            refused += 1
    return refused, failures


def config_case(schema, workdir, executor):
    def check(text, expected):
        msg = refusal(schema, workdir, text, executor)
        if msg is None:
            return "accepted"
        missing = [e for e in expected if e not in msg]
        if missing:
            return f"{missing} not in {msg!r}"
        if "case.yaml" not in msg and "config.yaml" not in msg:
            return f"no file named in {msg!r}"
        return None

    return check


COUNTS: dict[str, str] = {}


def test_bad_configs_are_refused_naming_key_file_and_expectation(schema, workdir, capsys):
    assert len(BAD_CONFIGS) + len(CLUSTER_CASES) >= 60
    local = run_battery(BAD_CONFIGS, config_case(schema, workdir, "local"))
    cluster = run_battery(CLUSTER_CASES, config_case(schema, workdir, "slurm"))
    refused, failures = local[0] + cluster[0], local[1] + cluster[1]
    COUNTS["configs"] = f"refused {refused}/{len(BAD_CONFIGS) + len(CLUSTER_CASES)} bad configs"
    with capsys.disabled():
        print("\n" + COUNTS["configs"])
    assert not failures, "\n".join(failures)


def test_the_key_is_traced_to_the_file_and_line_that_set_it(schema, workdir):
    msg = refusal(schema, workdir, "models:\n  width: 0.5\niris:\n  layers: [penultimate, layer9]\n")
    assert "iris.layers[1]: 'layer9' is not a layer of resnet18, vgg16bn" in msg
    assert f"[set in {workdir / 'case.yaml'}, line 4]" in msg
    # a key the default config sets, and a schema default
    msg = refusal(schema, workdir, "device: cuda", executor="slurm")
    assert "models.resources.gpu: is 0" in msg and f"[set in {DEFAULT}, line " in msg
    # several problems are reported together
    msg = refusal(schema, workdir, "results: ''\niris: {metric: psnr}\nsurvey: {post_url: 'https://*'}")
    assert all(k in msg for k in ("results: ''", "iris.metric: 'psnr'", "survey.post_url: 'https://*'"))


def test_valid_configs_are_accepted(schema, workdir):
    assert refusal(schema, workdir, "models: {width: 0.5}") is None
    assert refusal(schema, workdir, REAL.format(files="good.csv")) is None
    # cuda under a cluster executor that gives the device stages GPUs: planned (checked on the node)
    gpus = "device: cuda\nmodels: {resources: {gpu: 1}}\niris: {resources: {gpu: 1}}"
    assert refusal(schema, workdir, gpus, executor="slurm") is None
    # in a job on a cluster node only the configuration is checked again (files and device were checked
    # by the main process, and the job checks CUDA on its node)
    node = "device: cuda\nmodels: {external: {mnist5k/ext-a: {path: gone.pt, arch: resnet18}}}"
    config = merge(yaml.safe_load(DEFAULT.read_text()), yaml.safe_load(node))
    assert plan_config(config, schema, [], {}, Environment(executor="local", remote_job=True, cuda=False))
    with pytest.raises(ConfigError, match="iris.layers"):
        plan_config(merge(config, {"iris": {"layers": ["layer9"]}}), schema, [], {}, Environment(remote_job=True))
    # imagefolder with two classes of images
    for c in ("cat", "dog"):
        (workdir / "two" / c).mkdir(parents=True, exist_ok=True)
        (workdir / "two" / c / "x.jpg").write_bytes(b"")
    assert refusal(schema, workdir, IMAGEFOLDER_GRID + "data: {imagefolder: {path: two}}") is None


# --- nested --config ------------------------------------------------------------------


def test_nested_config_strings_take_the_schema_types(schema):
    given = {
        "targets": {"n": "3", "seed": "1"},
        "models": {
            "width": "0.5",
            "stem_stride": "2",
            "train": {"amp": "off", "channels_last": "true"},
            "grid": [{"datasets": ["mnist5k"], "archs": ["resnet18"], "objectives": ["ce"], "seeds": ["0", "1"]}],
            "augmentations": {"adv": {"kind": "adversarial", "attack": {"norm": "l2", "eps": "1e-1"}}},
        },
        "iris": {"keep_best": "false", "layers": ["layer1"], "loss_defs": {"adversarial": {"lam": "auto"}}},
        "judgments": {"observers": {"simulated": [{"metric": "ssim", "sigma": "null", "n_participants": "5"}]}},
        "rsa": {"triplets": {"n": "~"}, "cache": "123"},
        "results": "out",
    }
    got = coerce_overrides(given, schema)
    assert got["targets"] == {"n": 3, "seed": 1}
    assert got["models"]["width"] == 0.5 and got["models"]["stem_stride"] == 2
    # 'off' is a valid enum string: not turned into the boolean YAML 1.1 reads
    assert got["models"]["train"] == {"amp": "off", "channels_last": True}
    assert got["models"]["grid"][0]["seeds"] == [0, 1] and got["models"]["grid"][0]["archs"] == ["resnet18"]
    assert got["models"]["augmentations"]["adv"]["attack"]["eps"] == 0.1
    assert got["iris"]["keep_best"] is False and got["iris"]["layers"] == ["layer1"]
    assert got["iris"]["loss_defs"]["adversarial"]["lam"] == "auto"
    assert got["judgments"]["observers"]["simulated"][0] == {"metric": "ssim", "sigma": None, "n_participants": 5}
    assert got["rsa"] == {"triplets": {"n": None}, "cache": "123"}  # a string where the schema wants one
    assert coerce_overrides({"iris": {"losses": ["5"]}}, schema) == {"iris": {"losses": ["5"]}}
    # a string the schema's types cannot take stays, for validation to name
    assert coerce_overrides({"targets": {"n": "three"}}, schema) == {"targets": {"n": "three"}}


def test_run_executor_reads_snakemake_command_line_and_profiles():
    assert run_executor(["-n"]) == "local"
    assert run_executor(["--profile", str(ROOT / "profiles" / "slurm"), "-n"]) == "slurm"
    assert run_executor(["--executor", "slurm", "--jobs", "2"]) == "slurm"
    assert run_executor(["--no-such-option"]) is None


# --- the bad-response-file battery ----------------------------------------------------


@pytest.fixture(scope="module")
def trials():
    # 6 seed-alternative 2AFC trials (2 options), 2 matching groups of 3, 2 catch trials
    return build_trials(
        6, np.arange(6) % 3, np.ones(6, bool), alternatives=("seed",), matching_k=3, n_catch=2, set_id="S"
    )


def text(header, rows) -> str:
    return "\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n"


def response_cases(trials):
    """(name, file name, content, substrings the message must hold)."""
    G = ["participant", "set_id", "trial_id", "response"]
    t0, t1, t2 = trials.trial_id.iloc[:3]
    ok = [["p1", "S", t, 0] for t in (t0, t1)]
    ev = {"trial_type": "html-button-response", "trial_index": 3, "participant": "p1", "set_id": "S"}
    jp = lambda **kw: json.dumps([{"trial_type": "instructions"}, {**ev, "trial_id": t0, "response": 0, **kw}])  # noqa: E731
    return [
        # issue 14
        (
            "big int",
            "r.csv",
            text(G, ok + [["p1", "S", t2, "99999999999999999999999"]]),
            ["row 3 (line 4), column 'response'", "'99999999999999999999999' is too large"],
        ),
        ("1e30", "r.json", jp(response=1e30), ["index 1, column 'response'", "is too large"]),
        (
            "script code",
            "r.csv",
            text(G, [["<script>alert(1)</script>", "S", t0, 0]]),
            [
                "row 1 (line 2), column 'participant'",
                "'<script>alert(1)</script>' is not allowed",
                "letters, digits, '-' or '_'",
            ],
        ),
        (
            "formula code",
            "r.csv",
            text(G, ok + [["=cmd|' /C calc'!A0", "S", t2, 0]]),
            ["row 3 (line 4), column 'participant'", "is not allowed"],
        ),
        ("plus formula", "r.csv", text(G, [["+1+1", "S", t0, 0]]), ["row 1 (line 2), column 'participant'"]),
        (
            "rt negative",
            "r.csv",
            text(G + ["rt_ms"], [ok[0] + [-5]]),
            ["row 1 (line 2), column 'rt_ms'", "'-5' is out of range", "from 0 to 86400000"],
        ),
        (
            "rt inf",
            "r.csv",
            text(G + ["rt_ms"], [ok[0] + ["inf"]]),
            ["row 1 (line 2), column 'rt_ms'", "'inf' is out of range"],
        ),
        (
            "rt 1e308",
            "r.csv",
            text(G + ["rt_ms"], [ok[0] + [1e308]]),
            ["row 1 (line 2), column 'rt_ms'", "out of range"],
        ),
        ("rt json inf", "r.json", jp(rt=float("inf")), ["index 1, column 'rt_ms'", "'inf' is out of range"]),
        ("rt json negative", "r.json", jp(rt=-3), ["index 1, column 'rt_ms'", "'-3' is out of range"]),
        (
            "not utf-8 csv",
            "r.csv",
            text(G, ok).encode() + b"p\xe9,S," + t2.encode() + b",0\n",
            ["row 3 (line 4), column 2 (byte ", "byte 0xe9 is not UTF-8"],
        ),
        (
            "not utf-8 header",
            "r.csv",
            b"partic\xffipant,set_id,trial_id,response\n",
            ["line 1 (header), column 7 (byte 6)", "0xff"],
        ),
        ("not utf-8 json", "r.json", b'[\n {"participant": "\xff"}]', ["line 2, column 19 (byte 20)", "0xff"]),
        # codes the survey page would not accept
        (
            "long code",
            "r.csv",
            text(G, [["x" * 65, "S", t0, 0]]),
            ["row 1 (line 2), column 'participant'", "...' is not allowed"],
        ),
        (
            "code with space",
            "r.csv",
            text(G, [["anna b", "S", t0, 0]]),
            ["column 'participant'", "'anna b' is not allowed"],
        ),
        (
            "code non-ascii",
            "r.csv",
            text(G, [["jürgen", "S", t0, 0]]),
            ["column 'participant'", "'jürgen' is not allowed"],
        ),
        ("jspsych code", "r.json", jp(participant="a/b"), ["index 1, column 'participant'", "'a/b' is not allowed"]),
        # cells
        (
            "negative response",
            "r.csv",
            text(G, [["p1", "S", t0, -1]]),
            ["row 1 (line 2), column 'response'", "'-1' is negative"],
        ),
        ("fraction", "r.csv", text(G, [["p1", "S", t0, 1.5]]), ["column 'response'", "'1.5' is not an integer"]),
        ("word", "r.csv", text(G, [["p1", "S", t0, "left"]]), ["column 'response'", "'left' is not an integer"]),
        (
            "no response",
            "r.csv",
            text(G, [["p1", "S", t0, ""]]),
            ["row 1 (line 2), column 'response'", "missing value"],
        ),
        ("no participant", "r.csv", text(G, [["", "S", t0, 0]]), ["column 'participant'", "missing value"]),
        ("rt word", "r.csv", text(G + ["rt_ms"], [ok[0] + ["fast"]]), ["column 'rt_ms'", "'fast' is not a number"]),
        ("json bool", "r.json", jp(response=True), ["index 1, column 'response'", "wrong type (bool)"]),
        (
            "json duplicate key",
            "r.json",
            json.dumps([ev])[:-2] + f', "trial_id": "{t0}", "response": 0, "response": 1}}]',
            ["index 0, column 'response'", "appears twice in one object"],
        ),
        # structure
        ("empty", "r.csv", "", ["line 1, column 1", "empty file"]),
        ("header only", "r.csv", text(G, []), ["row 1 (line 2)", "no data rows"]),
        (
            "missing column",
            "r.csv",
            text(G[:3], [r[:3] for r in ok]),
            ["line 1 (header)", "column 'response'", "missing column"],
        ),
        (
            "extra column",
            "r.csv",
            text(G + ["mood"], [ok[0] + ["ok"]]),
            ["line 1 (header)", "column 'mood'", "unexpected column"],
        ),
        (
            "header twice",
            "r.csv",
            text(G + ["response"], [ok[0] + [1]]),
            ["line 1 (header)", "column 'response'", "appears twice"],
        ),
        ("ragged", "r.csv", text(G, [ok[0], ok[1] + ["x"]]), ["row 2 (line 3)", "the row has 5 fields"]),
        ("open quote", "r.csv", text(G, ok) + 'p1,"S,x,0\n', ["line ", "not valid CSV"]),
        (
            "nul byte",
            "r.csv",
            text(G, ok) + f"p1,S\x00,{t2},0\n",
            ["row 3 (line 4), column 'set_id'", "control character"],
        ),
        (
            "json syntax",
            "r.json",
            f'[{{"trial_id": "{t0}",\n  "response": }}]',
            ["line 2, column 15", "not valid JSON"],
        ),
        ("json object", "r.json", json.dumps({"participant": "a"}), ["top level", "expected an array"]),
        ("json numbers", "r.json", "[1, 2]", ["index 0", "a JSON int"]),
        (
            "json no judgments",
            "r.json",
            json.dumps([{"trial_type": "instructions"}]),
            ["column 'trial_id'", "no judgment"],
        ),
        (
            "json missing key",
            "r.json",
            json.dumps([{"participant": "a", "set_id": "S", "trial_id": t1}]),
            ["index 0, column 'response'", "missing column"],
        ),
        # against the trials table
        (
            "unknown trial",
            "r.csv",
            text(G, [ok[0], ["p1", "S", "S/2afc-seed/99", 0]]),
            ["row 2 (line 3), column 'trial_id'", "unknown trial id 'S/2afc-seed/99'"],
        ),
        ("wrong set", "r.csv", text(G, [["p1", "T", t0, 0]]), ["row 1 (line 2), column 'set_id'", "'S'"]),
        ("out of range", "r.csv", text(G, [["p1", "S", t0, 2]]), ["row 1 (line 2), column 'response'", "0..1"]),
        (
            "answered twice",
            "r.csv",
            text(G, [ok[0], ok[1], ["p1", "S", t0, 1]]),
            ["row 3 (line 4), column 'trial_id'", "again (first at row 1 (line 2))"],
        ),
        ("a folder", "folder.csv", None, ["folder.csv: a folder"]),
        ("no file", "absent.csv", False, ["absent.csv: no such file"]),
    ]


def response_case(tmp_path, trials):
    def check(name, content, expected):
        path = tmp_path / name
        if content is None:
            path.mkdir(exist_ok=True)
        elif content is not False:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        try:
            load_responses(path, trials)
        except ResponseError as e:
            msg = str(e)
        else:
            return "accepted"
        missing = [e for e in [str(path), *expected] if e not in msg]
        return f"{missing} not in {msg!r}" if missing else None

    return check


def test_bad_response_files_are_refused_naming_file_row_and_column(tmp_path, trials, capsys):
    cases = response_cases(trials)
    refused, failures = run_battery(cases, response_case(tmp_path, trials))
    # two files that are fine alone: the same answer in both, the same file twice
    G = ["participant", "set_id", "trial_id", "response"]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(text(G, [["p1", "S", t, 0] for t in trials.trial_id[:3]]))
    b.write_text(text(G, [["p1", "S", trials.trial_id.iloc[2], 1]]))
    for name, files, expected in (
        (
            "same answer in two files",
            [a, b],
            f"{b}: participant 'p1' answered trial '{trials.trial_id.iloc[2]}' in {a} too",
        ),
        ("listed twice", [a, tmp_path / "." / "a.csv"], "listed twice"),
    ):
        cases.append(name)
        try:
            load_response_files(files, trials)
            failures.append(f"{name}: accepted")
        except ResponseError as e:
            if expected in str(e):
                refused += 1
            else:
                failures.append(f"{name}: {expected!r} not in {str(e)!r}")
    assert len(cases) >= 35
    COUNTS["responses"] = f"{refused}/{len(cases)} bad response files"
    with capsys.disabled():
        print(
            f"\n{COUNTS['responses']} refused"
            + (f"; {COUNTS['configs']}, {COUNTS['responses']}" if "configs" in COUNTS else "")
        )
    assert not failures, "\n".join(failures)


def test_format_is_checked_without_trials_and_good_files_pass(tmp_path, trials):
    good = tmp_path / "good.csv"
    good.write_text(
        text(
            ["participant", "set_id", "trial_id", "response", "rt_ms"],
            [["Anna_1-b", "S", t, c, 812.5] for t, c in zip(trials.trial_id, trials.correct)],
        )
    )
    raw = check_response_file(good)
    assert list(raw["participant"].unique()) == ["Anna_1-b"] and (raw["rt_ms"] == 812.5).all()
    df = load_responses(good, trials)
    assert df["correct"].all() and len(df) == len(trials)
    # an unknown trial id is a matter for the trials table: the format check lets it pass
    other = tmp_path / "other.csv"
    other.write_text(text(["participant", "set_id", "trial_id", "response"], [["p1", "S", "S/none/0", 0]]))
    assert list(check_response_file(other)["trial_id"]) == ["S/none/0"]


# --- the catalog agrees with the real models --------------------------------------------


def test_catalog_layers_are_those_of_the_real_models():
    from iriflow.archs import ARCHS, build_model
    from iriflow.datasets import DATASETS
    from iriflow.represent import layer_names

    assert sorted(ARCHS) == list(ARCH_NAMES) == sorted(ARCH_LAYERS)  # tests/test_config.py: METRIC_NAMES
    assert sorted(DATASETS) == list(DATASET_NAMES)
    for arch in ARCH_NAMES:
        model = build_model(arch, 10, 3, [0.5] * 3, [0.25] * 3, 0.125)
        assert tuple(layer_names(model)) == ARCH_LAYERS[arch], arch


# --- a corrupt training checkpoint ---------------------------------------------------------


RECIPE = {**TRAIN_RECIPE, "epochs": 3, "snapshot_every": 0}


def _trainer(tmp_path, tag):
    """A Trainer of tests/test_train.py, checkpointing to tmp_path/tag/last.pt."""
    trainer = make_trainer(tmp_path, aug="none", tag=tag, recipe=RECIPE)
    trainer.snapshot_dir = None
    return trainer


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend on a busy machine
    full = _trainer(tmp_path_factory.mktemp("full"), "full")
    full.run(*toy_data())
    yield full
    torch.set_num_threads(before)


@pytest.mark.parametrize("damage", ["truncated", "empty", "not a checkpoint", "other model"])
def test_corrupt_checkpoint_is_moved_aside_and_training_completes(tmp_path, damage, caplog, uninterrupted):
    x, y = toy_data()
    full = uninterrupted
    ckpt = tmp_path / "run" / "last.pt"
    first = _trainer(tmp_path, "run")
    first.run(x, y, stop_after=2)  # killed after epoch 2 ...
    good = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "not a checkpoint":
        torch.save([1, 2, 3], ckpt)
    else:
        state = torch.load(ckpt, weights_only=True)
        state["model"] = {k: v[:1] if v.ndim else v for k, v in state["model"].items()}
        torch.save(state, ckpt)
    damaged = ckpt.read_bytes()
    with caplog.at_level(logging.WARNING, logger="iriflow.train"):
        result = _trainer(tmp_path, "run").run(x, y)  # ... and restarted on a damaged checkpoint
    aside = list(ckpt.parent.glob("last.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    assert f"checkpoint {ckpt} cannot be used" in caplog.text and f"moved it aside to {aside[0]}" in caplog.text
    # trained from scratch to the end: every epoch, and the weights of an uninterrupted run
    assert result.resumed_from == 0 and [r["epoch"] for r in result.history] == [1, 2, 3]
    assert [r["loss"] for r in result.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)
    fresh = _trainer(tmp_path, "run")
    assert fresh._read_checkpoint()["epoch"] == 3  # the new checkpoint is good


# --- temporaries of killed writes ---------------------------------------------------------

WRITER = """
import sys, time
from iriflow.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(60)
"""


def _writer(target):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_temporaries_of_killed_writes_are_removed_live_ones_kept(tmp_path):
    killed, killed_tmp = _writer(tmp_path / "a.csv")
    live, live_tmp = _writer(tmp_path / "b.csv")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_tmp.exists() and killed_tmp.name.startswith(".a.csv.")
        # another host's temporaries: removed once a day old (their writers cannot be asked)
        old = tmp_path / ".c.csv.otherhost~123.abcd1234.tmp"
        young = tmp_path / ".d.csv.otherhost~123.abcd1234.tmp"
        old.write_bytes(b"x")
        young.write_bytes(b"x")
        os.utime(old, (time.time() - iio.STALE_AFTER_S - 60,) * 2)
        (tmp_path / ".e.csv.unrelated.tmp").write_bytes(b"not ours")
        removed = iio.clean_stale_temporaries(tmp_path)
        assert sorted(removed) == sorted([killed_tmp, old])
        assert live_tmp.exists() and young.exists() and (tmp_path / ".e.csv.unrelated.tmp").exists()
        assert not (tmp_path / "a.csv").exists()
        # the next write of a folder cleans it too
        killed2, tmp2 = _writer(tmp_path / "sub" / "f.csv")
        killed2.send_signal(signal.SIGKILL)
        killed2.wait()
        iio.write_bytes_atomic(tmp_path / "sub" / "g.csv", b"ok")
        assert not tmp2.exists() and (tmp_path / "sub" / "g.csv").read_bytes() == b"ok"
    finally:
        live.kill()
        live.wait()


# --- through snakemake: refused while planning, nothing written ---------------------------


def snakemake_n(work, *args):
    return run_snakemake("-n", "-d", str(work), *args, check=False, timeout=300)


def test_snakemake_refuses_at_plan_time_and_writes_nothing(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    proc = snakemake_n(work, "--config", "iris={layers: [layer9]}", "survey={post_url: 'https://*'}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "iris.layers[0]: 'layer9' is not a layer of resnet18, vgg16bn" in out and "[set in --config]" in out
    assert "survey.post_url: 'https://*': the host '*'" in out
    # a duplicated key in a --configfile (Snakemake's loader keeps the last silently)
    (work / "dup.yaml").write_text("targets: {n: 4}\niris: {steps: 5}\ntargets: {n: 8}\n")
    proc = snakemake_n(work, "--configfile", str(work / "dup.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{work / 'dup.yaml'}: line 3: key targets is given twice (first at line 1)" in out
    # a response file that is bad on its own
    (work / "r.csv").write_text("participant,set_id,trial_id,response\n=cmd|x,S,t,0\n")
    proc = snakemake_n(work, "--config", "judgments={observers: {real: {responses: [r.csv]}}}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "judgments.observers.real.responses[0]: r.csv: row 1 (line 2), column 'participant'" in out
    # device: cuda where the jobs would run locally on a machine without CUDA
    if not torch.cuda.is_available():
        proc = snakemake_n(work, "--config", "device=cuda")
        assert proc.returncode != 0 and "device: 'cuda', but torch sees no CUDA device" in proc.stdout + proc.stderr
    # under the cluster profile the planning node needs no GPU, the jobs must ask for one
    slurm = ("--profile", str(ROOT / "profiles" / "slurm"))
    proc = snakemake_n(work, *slurm, "--config", "device=cuda")
    assert proc.returncode != 0 and "models.resources.gpu: is 0, but device is 'cuda'" in proc.stdout + proc.stderr
    proc = snakemake_n(
        work, *slurm, "--config", "device=cuda", "models={resources: {gpu: 1}}", "iris={resources: {gpu: 1}}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in work.iterdir()) == [".snakemake", "dup.yaml", "r.csv"]  # no results/


def test_nested_config_through_snakemake(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    proc = snakemake_n(work, "--config", "targets={n: 0}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "targets.n: 0 is less than the minimum of 1 (expected: Number of targets" in out
    assert "[set in --config]" in out  # 0 was read as a number: a range error, not a type error
    run_snakemake(
        "--cores",
        "1",
        "-d",
        str(work),
        f"{'results'}/targets/mnist5k/targets.npz",
        "--config",
        "targets={n: 3, seed: 1}",
        "data={mnist5k: {test_fraction: 0.25}}",
    )
    with np.load(work / "results" / "targets" / "mnist5k" / "targets.npz") as z:
        sizes = {k: z[k].shape[0] for k in z.files}
    assert set(sizes.values()) == {3}, sizes
    info = json.loads((work / "results" / "data" / "mnist5k" / "meta.json").read_text())
    assert info["n_test"] == 1250, info  # 25% of the 5000 digits


# --- good results are never lost ----------------------------------------------------------


def _scored_run(work):
    """A run whose trials tables exist (as after the simulated stage) and whose
    real responses file is fine; score_alignment runs for real."""
    sid = f"{GRID_ID}/penultimate/regfree/super-noise"
    t = build_trials(8, np.arange(8) % 4, np.ones(8, bool), set_id=sid, n_catch=2)
    d = np.random.default_rng(0).random((len(t), int(t.n_options.max())))
    sim = simulate_population(
        t, d, n_participants=3, sigma=0.1, sigma_spread=0.1, lapse=0.0, seed=0, observer="simulated:ssim"
    )
    out = work / "results" / "judgments" / GRID_ID
    out.mkdir(parents=True)
    t.to_csv(out / "trials.csv", index=False)
    sim.to_csv(out / "responses_simulated.csv", index=False)
    rows = [[p, s, i, c] for p in ("anna", "bob") for s, i, c in zip(t.set_id, t.trial_id, t.correct)]
    (work / "real.csv").write_text(text(["participant", "set_id", "trial_id", "response"], rows))
    cfg = {
        "models": {
            "grid": [
                {"datasets": ["mnist5k"], "archs": ["resnet18"], "objectives": ["ce"], "augmentations": ["standard"]}
            ]
        },
        "judgments": {"observers": {"simulated": [{"metric": "ssim"}], "real": {"responses": ["real.csv"]}}},
        "iris": {"losses": ["regfree"], "seed_types": ["super-noise"]},
        "analysis": {"bootstrap": {"n": 20}, "checkpoints": {"enabled": False}, "examples": {"seed_type": ""}},
        "rsa": {"enabled": False},
        "engstrom": {"enabled": False},  # no feature-visualisation set in this tree
    }
    (work / "run.yaml").write_text(yaml.safe_dump(cfg))
    return t


def test_bad_response_file_leaves_earlier_results_byte_identical(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    trials = _scored_run(work)
    # the trials tables exist, so only the scoring steps run (as after a survey)
    args = (
        "results/judgments/alignment.csv",
        "--configfile",
        str(work / "run.yaml"),
        "--cores",
        "1",
        "-d",
        str(work),
        "--allowed-rules",
        "check_responses",
        "score_alignment",
    )
    run_snakemake(*args)
    judged = work / "results" / "judgments"
    table = pd.read_csv(judged / "alignment.csv")
    assert set(table["observer"]) == {"real", "simulated:ssim"}
    real = table[(table["observer"] == "real") & (table["kind"] == "2afc")]
    assert len(real) and (real["prop_correct"] == 1.0).all()  # both people answered every trial right
    before = {p.name: p.read_bytes() for p in (judged / "alignment.csv", judged / "exclusions.json")}
    good = (work / "real.csv").read_text().splitlines()
    t1 = trials.trial_id.iloc[1]
    bad_files = [
        # bad on its own: an overflowing response in row 3
        (
            good[:3] + [good[3].rsplit(",", 1)[0] + ",99999999999999999999999"] + good[4:],
            ["real.csv: row 3 (line 4), column 'response'", "is too large"],
        ),
        # does not fit the trials: an unknown trial id in row 2
        (
            good[:2] + [good[2].replace(f",{t1},", ",S/nowhere/1,")] + good[3:],
            ["real.csv: row 2 (line 3), column 'trial_id'", "unknown trial id 'S/nowhere/1'"],
        ),
    ]
    for lines, expected in bad_files:
        (work / "real.csv").write_text("\n".join(lines) + "\n")
        proc = run_snakemake(*args, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert all(e in out for e in expected), out[-3000:]
        assert "rule score_alignment" not in out and "rule check_responses" not in out  # refused while planning
        after = {p.name: p.read_bytes() for p in (judged / "alignment.csv", judged / "exclusions.json")}
        assert after == before
    # trials made in this run, which the planning cannot check the file against:
    # rule check_responses stops the run after them, before score_alignment
    from iriflow.iriset import IRISet

    (judged / GRID_ID / "trials.csv").unlink()
    rng = np.random.default_rng(1)
    images = [rng.random((8, 1, 28, 28)) for _ in range(3)]
    iri_set = IRISet(
        f"{GRID_ID}/penultimate/regfree/super-noise",
        *images,
        np.arange(8),
        np.arange(8) % 4,
        np.full(8, 0.05),
        np.full(8, 0.01),
        np.ones(8, bool),
    )
    iri_set.save(work / "results" / "iris" / GRID_ID / "penultimate" / "regfree" / "super-noise" / "iris.npz")
    observers = {"ssim": {"metric": "ssim", "sigma": 0.05, "sigma_spread": 0.1, "lapse": 0.0, "n_participants": 3}}
    (judged / "observers" / "mnist5k").mkdir(parents=True)
    (judged / "observers" / "mnist5k" / "calibration.json").write_text(json.dumps(observers))
    proc = run_snakemake(*args[:-2], "simulate_judgments", *args[-2:], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "rule check_responses" in out and "rule score_alignment" not in out
    assert "real.csv: row 2 (line 3), column 'trial_id': unknown trial id 'S/nowhere/1'" in out
    assert len(pd.read_csv(judged / GRID_ID / "trials.csv")) > 0  # the trials were made ...
    after = {p.name: p.read_bytes() for p in (judged / "alignment.csv", judged / "exclusions.json")}
    assert after == before  # ... and the earlier results are untouched


def test_corrupt_last_pt_in_the_workflow_is_moved_aside_and_training_completes(tmp_path):
    work = tmp_path / "w"
    model = "resnet18-ce-none-s0"
    cfg = {
        "models": {
            "width": 0.125,
            "grid": [{"datasets": ["mnist5k"], "archs": ["resnet18"], "objectives": ["ce"], "augmentations": ["none"]}],
            "train": {"epochs": 2, "batch_size": 256},
        },
        "rsa": {"enabled": False},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    ckpt = work / "results" / "checkpoints" / "mnist5k" / model / "last.pt"
    ckpt.parent.mkdir(parents=True)
    garbage = b"PK\x03\x04" + bytes(100)  # the start of a zip archive, cut off
    ckpt.write_bytes(garbage)
    # a temporary a killed write left beside an output
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = work / "results" / "models" / "mnist5k" / model / f".model.pt.{iio._host()}~{dead.pid}.abcd1234.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    proc = run_snakemake(
        f"results/models/mnist5k/{model}/model.json",
        "--configfile",
        str(tmp_path / "tiny.yaml"),
        "--cores",
        "1",
        "-d",
        str(work),
    )
    assert f"removed {Path('results/models/mnist5k') / model / stale.name}, left by a killed write" in proc.stderr
    assert not stale.exists()
    aside = list(ckpt.parent.glob("last.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    log = (work / "results" / "logs" / "models" / "mnist5k" / model / "train.log").read_text()
    assert f"checkpoint {ckpt.relative_to(work)} cannot be used" in log and "moved it aside" in log
    metrics = pd.read_csv(work / "results" / "models" / "mnist5k" / model / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and np.isfinite(metrics["loss"]).all()
    info = json.loads((work / "results" / "models" / "mnist5k" / model / "model.json").read_text())
    assert info["epochs"] == 2 and info["resumed_from_epoch"] == 0
