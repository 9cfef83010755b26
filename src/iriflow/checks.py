"""The checks of a configuration that its schema cannot express, run by
iriflow.config.validate_config after the schema (so every key is there, with
its defaults): names that must refer to each other (grid variants, metrics,
IRI losses, observers, example models), the layers each architecture has
(from the torch-free iriflow.catalog), settings that contradict each other,
and, given an Environment, what the run needs from the machine it plans on:
the files the config names (image folder, external checkpoints, response
files, THINGS data, the RSA data folder) and the device.

Each check returns Problems (key path, what is wrong and what was expected);
iriflow.config reports them all at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .analysis import observer_order
from .catalog import ARCH_LAYERS, ARCH_NAMES, DATASET_NAMES, METRIC_NAMES
from .config import (
    IRI_LOSS_KINDS,
    Environment,
    ModelSpec,
    Problem,
    datasets_used,
    excluded_by,
    grid_products,
    model_grid,
    model_settings,
    observer_name,
    trials_tables,
)


def check_references(cfg: Mapping[str, Any]) -> list[Problem]:
    """Problems of ``cfg`` (validated by the schema, defaults filled) that
    need no file and no device."""
    problems = _grid(cfg)
    for check in (_metrics, _losses, _observers, _survey, _results):
        problems += check(cfg)
    if any(problem[0][:2] in (["models", "grid"], ["models", "augmentations"]) for problem in problems):
        return problems  # the checks below need the grid's models
    for check in (_external, _layers, _analysis, _other, _cuda_only, _iri_optimiser):
        problems += check(cfg)
    return problems


def _grid(cfg: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    models = cfg["models"]
    objectives, augmentations = models["objectives"], models["augmentations"]
    for i, block in enumerate(models["grid"]):
        for key, known in (("archs", ARCH_NAMES), ("objectives", objectives), ("augmentations", augmentations)):
            for j, name in enumerate(block[key]):
                if name not in known:
                    problems.append(
                        (["models", "grid", i, key, j], f"{name!r} is not defined; expected one of {sorted(known)}")
                    )
    for name, aug in augmentations.items():
        if aug["kind"] == "adversarial":
            base = aug.get("base", "standard")
            if base not in augmentations:
                problems.append(
                    (
                        ["models", "augmentations", name, "base"],
                        f"{base!r} is not a defined augmentation; expected one of {sorted(augmentations)}",
                    )
                )
            elif augmentations[base]["kind"] == "adversarial":
                problems.append(
                    (
                        ["models", "augmentations", name, "base"],
                        f"{base!r} is itself adversarial; expected a non-adversarial augmentation",
                    )
                )
    if problems:
        return problems  # the grid below needs defined names
    products = grid_products(cfg)
    for i, rule in enumerate(models["exclude"]):
        if not any(excluded_by(s, rule) for s in products):
            problems.append(
                (
                    ["models", "exclude", i],
                    f"{dict(rule)} matches no model of models.grid, so it excludes nothing; expected an entry "
                    f"whose fields (dataset, arch, objective, augmentation, seed) match a grid model, "
                    f"e.g. {_as_rule(products[0])}",
                )
            )
    if products and not model_grid(cfg) and not models["external"]:
        problems.append(
            (
                ["models", "exclude"],
                f"excludes all {len(products)} models of models.grid and models.external is empty: "
                "nothing to train or study; expected at least one model left",
            )
        )
    return problems


def _as_rule(spec: ModelSpec) -> dict[str, Any]:
    return {"arch": spec.arch, "objective": spec.objective, "augmentation": spec.augmentation}


def _external(cfg: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    grid_ids = {s.id for s in model_grid(cfg)}
    for model_id, ext in cfg["models"]["external"].items():
        key = ["models", "external", model_id]
        dataset = model_id.split("/", 1)[0]
        if dataset not in DATASET_NAMES:
            problems.append((key, f"dataset {dataset!r} is not a dataset; expected one of {list(DATASET_NAMES)}"))
        if model_id in grid_ids:
            problems.append(
                (key, "is also a model of models.grid (trained there); expected an id of its own for a checkpoint")
            )
        if ext["arch"] not in ARCH_NAMES:
            problems.append(
                (
                    key + ["arch"],
                    f"{ext['arch']!r} is not a registered architecture; expected one of {list(ARCH_NAMES)}",
                )
            )
    return problems


def model_archs(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Every model id of the run (grid, then external) with its architecture."""
    archs = {s.id: s.arch for s in model_grid(cfg)}
    archs.update({k: v["arch"] for k, v in cfg["models"]["external"].items()})
    return archs


def _layer_problems(used: Sequence[tuple[list, str]], archs: Mapping[str, str]) -> list[Problem]:
    """Each (key path, layer) of ``used`` must name a layer of every model of
    ``archs`` (model id -> architecture)."""
    known = {a for a in archs.values() if a in ARCH_LAYERS}
    if not known:
        return []
    common = [name for name in ARCH_LAYERS[min(known)] if all(name in ARCH_LAYERS[a] for a in known)]
    problems: list[Problem] = []
    for key, layer in used:
        lacking = sorted(a for a in known if layer not in ARCH_LAYERS[a])
        if lacking:
            example = next(m for m, a in archs.items() if a == lacking[0])
            detail = "; ".join(f"{a} has {list(ARCH_LAYERS[a])}" for a in lacking)
            problems.append(
                (
                    key,
                    f"{layer!r} is not a layer of {', '.join(lacking)} (e.g. model {example}: {detail}); "
                    f"expected a layer every model has: {common}",
                )
            )
    return problems


def _layers(cfg: Mapping[str, Any]) -> list[Problem]:
    archs = model_archs(cfg)
    used = [(["iris", "layers", j], layer) for j, layer in enumerate(cfg["iris"]["layers"])]
    if cfg["rsa"]["enabled"]:
        used += [(["rsa", "layers", j], layer) for j, layer in enumerate(cfg["rsa"]["layers"])]
    used.append((["analysis", "stir", "layer"], cfg["analysis"]["stir"]["layer"]))
    if cfg["engstrom"]["enabled"]:
        used.append((["engstrom", "layer"], cfg["engstrom"]["layer"]))
    problems = _layer_problems(used, archs)
    ckpt = cfg["analysis"]["checkpoints"]
    if ckpt["enabled"]:
        simclr = {s.id: s.arch for s in model_grid(cfg) if model_settings(cfg, s)["objective"]["kind"] == "simclr"}
        problems += _layer_problems([(["analysis", "checkpoints", "layer"], ckpt["layer"])], simclr)
    return problems


def _metrics(cfg: Mapping[str, Any]) -> list[Problem]:
    iris, observers = cfg["iris"], cfg["judgments"]["observers"]
    used: list[tuple[list, str]] = [(["iris", "metric"], iris["metric"])]
    used += [
        (["judgments", "observers", "simulated", i, "metric"], o["metric"])
        for i, o in enumerate(observers["simulated"])
    ]
    used += [
        (["judgments", "observers", "validation", "metrics", i], m)
        for i, m in enumerate(observers["validation"]["metrics"])
    ]
    used += [(["iris", "loss_defs", k, "metric"], v["metric"]) for k, v in iris["loss_defs"].items() if "metric" in v]
    used += [(["analysis", "proxy", "metrics", i], m) for i, m in enumerate(cfg["analysis"]["proxy"]["metrics"])]
    used.append((["engstrom", "interpolation", "metric"], cfg["engstrom"]["interpolation"]["metric"]))
    return [
        (key, f"{name!r} is not a registered metric; expected one of {list(METRIC_NAMES)}")
        for key, name in used
        if name not in METRIC_NAMES
    ]


def _losses(cfg: Mapping[str, Any]) -> list[Problem]:
    iris = cfg["iris"]
    problems: list[Problem] = [
        (
            ["iris", "losses", j],
            f"{name!r} is neither a registered loss {list(IRI_LOSS_KINDS)} nor defined in iris.loss_defs",
        )
        for j, name in enumerate(iris["losses"])
        if name not in iris["loss_defs"]
    ]
    loss = cfg["analysis"]["checkpoints"]["loss"]
    if cfg["analysis"]["checkpoints"]["enabled"] and loss not in iris["loss_defs"] and loss not in IRI_LOSS_KINDS:
        problems.append(
            (
                ["analysis", "checkpoints", "loss"],
                f"{loss!r} is neither a registered IRI loss {list(IRI_LOSS_KINDS)} nor defined in iris.loss_defs",
            )
        )
    return problems


def _observers(cfg: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    names = [observer_name(o) for o in cfg["judgments"]["observers"]["simulated"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(
                (
                    ["judgments", "observers", "simulated", i],
                    f"observer name {name!r} is used twice; expected a unique name "
                    "(set 'name' when two observers share a metric)",
                )
            )
    seen: dict[str, int] = {}
    for i, path in enumerate(cfg["judgments"]["observers"]["real"]["responses"]):
        real = os.path.realpath(path)
        if real in seen:
            problems.append(
                (
                    ["judgments", "observers", "real", "responses", i],
                    f"{path!r} is listed twice (also as [{seen[real]}]); expected each file once",
                )
            )
        seen.setdefault(real, i)
    return problems


MEASURE_ALTERNATIVE = {"2afc:other-target": "other-target", "2afc:seed": "seed"}


def _analysis(cfg: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    analysis = cfg["analysis"]
    primary = analysis["primary"]
    real = bool(cfg["judgments"]["observers"]["real"]["responses"])
    kinds = [k for k in observer_order(cfg["judgments"]) if k != "real" or real]
    if primary["observer"] != "auto" and primary["observer"] not in kinds:
        hint = " (no judgments.observers.real.responses are configured)" if primary["observer"] == "real" else ""
        problems.append(
            (
                ["analysis", "primary", "observer"],
                f"{primary['observer']!r} is not an observer of this run{hint}; expected 'auto' or one of {kinds}",
            )
        )
    alternative = MEASURE_ALTERNATIVE.get(primary["measure"])
    if alternative and alternative not in cfg["judgments"]["alternatives"]:
        problems.append(
            (
                ["analysis", "primary", "measure"],
                f"{primary['measure']!r} needs 2AFC trials with the {alternative!r} alternative, which "
                f"judgments.alternatives {cfg['judgments']['alternatives']} leaves out; expected a measure "
                "of the trials made, or that alternative added",
            )
        )
    examples = analysis["examples"]
    ids = list(model_archs(cfg))
    set_ids = [k for k in ("standard", "robust") if examples[k]]
    if len(set_ids) == 1:
        other = "robust" if set_ids[0] == "standard" else "standard"
        problems.append(
            (
                ["analysis", "examples", other],
                f"is empty while analysis.examples.{set_ids[0]} is set; expected both model ids, or neither "
                "('' picks the first standard/robust pair of the grid)",
                ["analysis", "examples", set_ids[0]],
            )
        )
    for k in set_ids:
        if examples[k] not in ids:
            problems.append(
                (["analysis", "examples", k], f"{examples[k]!r} is not a model of this run; expected one of {ids}")
            )
    if len(set_ids) == 2 and examples["standard"] == examples["robust"]:
        problems.append((["analysis", "examples", "robust"], "is the standard model too; expected another model"))
    seed_type = examples["seed_type"]
    if seed_type and seed_type not in cfg["iris"]["seed_types"]:
        problems.append(
            (
                ["analysis", "examples", "seed_type"],
                f"{seed_type!r} is not among iris.seed_types {cfg['iris']['seed_types']}; expected one of them "
                "('' = the first)",
            )
        )
    return problems


def _survey(cfg: Mapping[str, Any]) -> list[Problem]:
    from .survey import SurveyError, check_post_url

    survey = cfg["survey"]
    problems: list[Problem] = []
    if survey["catch_per_participant"] >= survey["trials_per_participant"]:
        problems.append(
            (
                ["survey", "catch_per_participant"],
                f"{survey['catch_per_participant']} catch trials fill all "
                f"{survey['trials_per_participant']} screens of survey.trials_per_participant, leaving none for "
                f"judgments; expected at most {survey['trials_per_participant'] - 1}",
            )
        )
    try:
        check_post_url(survey["post_url"])
    except SurveyError as e:
        problems.append((["survey", "post_url"], str(e).removeprefix("survey.post_url ")))
    return problems


def _results(cfg: Mapping[str, Any]) -> list[Problem]:
    results = cfg["results"]
    if not results.strip():
        return [(["results"], f"{results!r} is empty; expected the folder everything is written to, e.g. 'results'")]
    if any(c in results for c in "{}"):
        return [(["results"], f"{results!r} has braces, which Snakemake reads as wildcards; expected a plain path")]
    path = Path(results).expanduser()
    if path.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        where = "the filesystem root" if path.resolve() == Path(path.resolve().anchor) else "the working directory"
        return [
            (
                ["results"],
                f"{results!r} is {where} or a folder above it; expected a folder of its own (the workflow "
                "writes data/, models/, iris/, logs/ ... into it), e.g. 'results'",
            )
        ]
    return []


def _other(cfg: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    rsa = cfg["rsa"]
    if rsa["enabled"] and rsa["things"]["triplets"] and not rsa["things"]["images"]:
        problems.append(
            (
                ["rsa", "things", "images"],
                "is not set, but rsa.things.triplets is; expected the images the triplets index: a folder "
                "(files sorted by name) or a text file with one image path per line",
                ["rsa", "things", "triplets"],
            )
        )
    if "imagefolder" in datasets_used(cfg) and not cfg["data"]["imagefolder"]["path"]:
        problems.append(
            (
                ["data", "imagefolder", "path"],
                "is not set, but the run uses the dataset imagefolder; expected the folder of your images "
                "(one subfolder per class, or train/ and test/ each holding class subfolders)",
                ["models", "grid"],
            )
        )
    return problems


def _cuda_only(cfg: Mapping[str, Any]) -> list[Problem]:
    """AMP acts on CUDA only. Under device auto a CPU job ignores it (and
    logs it); device cpu asks for what it cannot do. (channels_last acts on
    both devices.)"""
    settings = [(["models", "train"], cfg["models"]["train"])]
    settings += [
        (["models", "objectives", name, "train"], o["train"])
        for name, o in cfg["models"]["objectives"].items()
        if "train" in o
    ]
    settings.append((["iris"], cfg["iris"]))
    problems: list[Problem] = []
    if cfg["device"] == "cpu":
        for path, block in settings:
            if block.get("amp", "off") != "off":
                problems.append(
                    (
                        [*path, "amp"],
                        f"is {block['amp']!r}, but device is 'cpu', which computes in float32 only; "
                        "expected 'off' (or device: auto/cuda)",
                    )
                )
    return problems


def _iri_optimiser(cfg: Mapping[str, Any]) -> list[Problem]:
    """The per-example stop freezes each IRI at its kept iterate: it needs
    keep_best. Momentum is a setting of the normalised steps. The
    coarse-to-fine fractions rise."""
    iris = cfg["iris"]
    problems: list[Problem] = []
    if iris["stop_every"] and not iris["keep_best"]:
        problems.append(
            (
                ["iris", "stop_every"],
                f"is {iris['stop_every']}, but iris.keep_best is false: a stopped IRI is frozen at its kept "
                "(best) iterate; expected 0 or keep_best: true",
                ["iris", "keep_best"],
            )
        )
    if iris["momentum"] and iris["optimizer"] != "normalized":
        problems.append(
            (
                ["iris", "momentum"],
                f"is {iris['momentum']}, but iris.optimizer is {iris['optimizer']!r}, which has its own; "
                "expected 0 or optimizer: normalized",
                ["iris", "optimizer"],
            )
        )
    fractions = iris["coarse_to_fine"]
    if any(a >= b for a, b in zip(fractions, fractions[1:])):
        problems.append(
            (
                ["iris", "coarse_to_fine"],
                f"is {fractions}: expected fractions of the steps that strictly rise (one per level, coarsest first)",
            )
        )
    return problems


# --- what the run needs from the machine -----------------------------------------


def check_environment(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    """Problems with the files ``cfg`` names (relative ones are relative to
    the working directory, where Snakemake runs the jobs)
    and its device."""
    if env.remote_job:
        return []  # the run's main process checked them before it submitted this job
    problems: list[Problem] = []
    for check in (_image_folder, _external_files, _response_files, _things_files, _rsa_cache, _device):
        problems += check(cfg, env)
    return problems


def _at(path: str) -> Path:
    return Path(path).expanduser()


def _relative_note(path: str) -> str:
    return "" if _at(path).is_absolute() else f" (relative to the working directory {Path.cwd()})"


def _image_folder(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    from .datasets import IMAGE_SUFFIXES

    path = cfg["data"]["imagefolder"]["path"]
    if "imagefolder" not in datasets_used(cfg) or not path:
        return []
    key = ["data", "imagefolder", "path"]
    root = _at(path)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        return [(key, f"{path!r} {what}{_relative_note(path)}; expected a folder with one subfolder per class")]
    splits = [root / "train", root / "test"] if (root / "train").is_dir() and (root / "test").is_dir() else [root]
    problems: list[Problem] = []
    for folder in splits:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(classes) < 2:
            problems.append(
                (key, f"{folder} has {len(classes)} class subfolder(s); expected at least 2 (one per class)")
            )
        for c in classes:
            if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in c.iterdir() if f.is_file()):
                problems.append(
                    (key, f"class folder {c} holds no image; expected files ending in {sorted(IMAGE_SUFFIXES)}")
                )
    return problems


def _external_files(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    problems: list[Problem] = []
    for model_id, ext in cfg["models"]["external"].items():
        if not _at(ext["path"]).is_file():
            problems.append(
                (
                    ["models", "external", model_id, "path"],
                    f"{ext['path']!r} is not a file{_relative_note(ext['path'])}; expected the checkpoint "
                    f"(a state_dict .pt of {ext['arch']})",
                )
            )
    return problems


def _response_files(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    """Each response file's format (iriflow.responses.check_response_file),
    and, when every trials table exists (they are what the survey was made
    from), its trials, participants' answers and options against them. Made
    in this run instead, the trials are checked by rule check_responses,
    before any scoring."""
    import pandas as pd

    from .responses import ResponseError, check_response_file, load_response_files
    from .survey import SurveyError, read_key

    key = ["judgments", "observers", "real", "responses"]
    files = cfg["judgments"]["observers"]["real"]["responses"]
    key_file = cfg["judgments"]["observers"]["real"]["key"]
    problems: list[Problem] = []
    survey_key = None
    if key_file:
        try:
            survey_key = read_key(_at(key_file))
        except (OSError, SurveyError, ValueError) as e:
            problems.append(
                (
                    ["judgments", "observers", "real", "key"],
                    f"{key_file!r} is not a readable survey key ({e}); expected the key.csv of the survey export",
                )
            )
    for i, path in enumerate(files):
        try:
            check_response_file(_at(path))
        except ResponseError as e:
            problems.append((key + [i], str(e)))
    tables = [_at(t) for t in trials_tables(cfg)]
    if problems or not files or not all(t.is_file() for t in tables):
        return problems
    trials = pd.concat([pd.read_csv(t, keep_default_na=False) for t in tables], ignore_index=True)
    try:
        load_response_files([_at(f) for f in files], trials, survey_key)
    except ResponseError as e:
        problems.append(
            (key, f"{e}\n    (checked against the trials tables {cfg['results']}/judgments/*/*/trials.csv)")
        )
    return problems


def _things_files(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    things = cfg["rsa"]["things"]
    if not cfg["rsa"]["enabled"] or not things["triplets"]:
        return []
    problems: list[Problem] = []
    if not _at(things["triplets"]).is_file():
        problems.append(
            (
                ["rsa", "things", "triplets"],
                f"{things['triplets']!r} is not a file{_relative_note(things['triplets'])}; expected the triplet file",
            )
        )
    if things["images"] and not _at(things["images"]).exists():
        problems.append(
            (
                ["rsa", "things", "images"],
                f"{things['images']!r} does not exist{_relative_note(things['images'])}; expected a folder "
                "of the images or a text file listing them",
            )
        )
    return problems


def _rsa_cache(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    """A folder of rsa.cache without the two files, when they may not be downloaded."""
    rsa = cfg["rsa"]
    if not rsa["enabled"] or not rsa["cache"] or rsa["download"]:
        return []
    from .rsa import RSA92_FILES

    missing = [f.name for f in RSA92_FILES.values() if not (_at(rsa["cache"]) / f.name).is_file()]
    if not missing:
        return []
    return [
        (
            ["rsa", "cache"],
            f"{rsa['cache']!r}{_relative_note(rsa['cache'])} lacks {', '.join(missing)}, and rsa.download is "
            "false; expected the folder that holds them ('' uses the copy committed in resources/rsa92), "
            "or rsa.download: true",
            ["rsa", "download"],
        )
    ]


def cuda_available() -> bool | None:
    """Whether torch sees a CUDA device here (asked in a subprocess, so that
    this process neither pays for importing torch nor holds a CUDA context);
    None when torch cannot be imported."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"True": True, "False": False}.get(out.stdout.strip())


# The stages whose jobs run on cfg["device"], by their resources key.
DEVICE_STAGES = ("models", "iris")


def _device(cfg: Mapping[str, Any], env: Environment) -> list[Problem]:
    """device: cuda needs a GPU where the jobs run. Run locally, that is this
    machine: refused here when torch sees no CUDA device. Under a cluster
    executor the jobs run on other nodes (the planning node often has no
    GPU): the stages that use the device must then ask for a GPU
    (models.resources.gpu, iris.resources.gpu >= 1); each job checks CUDA
    when it starts on its node."""
    if cfg["device"] != "cuda":
        return []
    if not env.local:
        return [
            (
                [stage, "resources", "gpu"],
                f"is 0, but device is 'cuda' and the jobs run under the executor {env.executor!r}, on nodes "
                "given no GPU; expected at least 1 (or device: auto/cpu)",
            )
            for stage in DEVICE_STAGES
            if cfg[stage]["resources"]["gpu"] < 1
        ]
    cuda = env.cuda if env.cuda is not None else cuda_available()
    if cuda is False:
        return [
            (
                ["device"],
                "'cuda', but torch sees no CUDA device on this machine, where the jobs would run; expected "
                "'auto' (CUDA when there is one, else the CPU) or 'cpu', or a cluster executor "
                "(--executor slurm / --profile profiles/slurm) whose nodes have GPUs",
            )
        ]
    return []
