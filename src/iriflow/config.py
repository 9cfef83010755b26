"""Configuration: schema validation with defaults, cross-reference checks, and
the model grid.

``validate_config`` is called by the Snakefile before any rule is planned. It
fills defaults from config/schema/config.schema.yaml and raises ConfigError
naming the key path (``models.grid[0].archs[1]``) and what was expected.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

IRI_LOSS_KINDS = ("regfree", "regfree-transforms", "tv-l6", "freq", "adversarial", "adversarial-seed")
MODEL_ID_RE = re.compile(
    r"^(?P<dataset>[a-z0-9_]+)/(?P<arch>[a-z0-9_.]+)-(?P<objective>[a-z0-9_.]+)"
    r"-(?P<augmentation>[a-z0-9_.]+)-s(?P<seed>[0-9]+)$"
)


class ConfigError(ValueError):
    """A user-fixable problem in the configuration; the message names the key."""


# libyaml's safe loader, where PyYAML was built with it: it reads the schema
# about 8x faster than the pure-Python one (0.3-0.5 s that every snakemake
# start-up paid, dry runs included) and gives the same dict (tests pin it).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path: str | Path) -> dict:
    return yaml.load(Path(path).read_text(), Loader=_SAFE_LOADER)


def key_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    while isinstance(schema, Mapping) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**node, **extra}
    return schema


def fill_defaults(instance: Any, schema: Mapping, root: Mapping | None = None) -> Any:
    """Insert schema defaults into ``instance`` (in place) wherever a key is
    missing, following properties, additionalProperties, items, $ref, allOf
    and if/then (when the 'if' matches)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            sub_r = _resolve(sub, root) if isinstance(sub, Mapping) else sub
            if key not in instance and isinstance(sub_r, Mapping) and "default" in sub_r:
                instance[key] = copy.deepcopy(sub_r["default"])
            if key in instance and isinstance(sub, Mapping):
                fill_defaults(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in instance:
                if key not in schema.get("properties", {}):
                    fill_defaults(instance[key], extra, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for item in instance:
            fill_defaults(item, schema["items"], root)
    for sub in schema.get("allOf", []):
        fill_defaults(instance, sub, root)
    if "if" in schema and "then" in schema:
        validator = jsonschema.Draft202012Validator({**_resolve(schema["if"], root), "$defs": root.get("$defs", {})})
        if validator.is_valid(instance):
            fill_defaults(instance, schema["then"], root)
    return instance


def _describe(error: jsonschema.ValidationError, root: Mapping) -> str:
    path = list(error.absolute_path)
    schema = _resolve(error.schema, root) if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        pattern_ok = schema.get("additionalProperties")
        extras = [k for k in error.instance if k not in allowed] if pattern_ok is False else []
        if extras:
            return f"{key_path(path + [extras[0]])}: unknown key {extras[0]!r}; expected one of {allowed}"
    expected = schema.get("description")
    msg = f"{key_path(path)}: {error.message}"
    return msg + (f" (expected: {expected})" if expected and len(expected) < 200 else "")


def validate_config(config: Mapping[str, Any], schema: Mapping | str | Path) -> dict:
    """Return a validated deep copy of ``config`` with defaults filled in;
    ``schema`` is the schema or its file (config/schema/config.schema.yaml).
    Raises ConfigError listing every problem, each with its key path."""
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    cfg = copy.deepcopy(dict(config))
    # IRI losses named after a registered kind need no explicit definition.
    iris = cfg.get("iris")
    if isinstance(iris, dict) and isinstance(iris.get("losses"), list):
        defs = iris.setdefault("loss_defs", {})
        if isinstance(defs, dict):
            for name in iris["losses"]:
                if name in IRI_LOSS_KINDS and name not in defs:
                    defs[name] = {"kind": name}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        lines = []
        for err in errors:
            # For if/then branches, report the innermost, most specific cause.
            leaf = jsonschema.exceptions.best_match([err])
            line = _describe(leaf, schema)
            if line not in lines:
                lines.append(line)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    fill_defaults(cfg, schema)
    check_references(cfg)
    return cfg


def check_references(cfg: Mapping[str, Any]) -> None:
    """Checks the schema cannot express: names used in the grid are defined."""
    from .catalog import ARCH_NAMES, METRIC_NAMES

    problems = []
    models = cfg["models"]
    objectives, augmentations = models["objectives"], models["augmentations"]
    for i, block in enumerate(models["grid"]):
        for field, known in (("archs", ARCH_NAMES), ("objectives", objectives), ("augmentations", augmentations)):
            for j, name in enumerate(block[field]):
                if name not in known:
                    problems.append(
                        f"models.grid[{i}].{field}[{j}]: {name!r} is not defined; expected one of {sorted(known)}"
                    )
    for name, aug in augmentations.items():
        if aug["kind"] == "adversarial":
            base = aug.get("base", "standard")
            if base not in augmentations:
                problems.append(f"models.augmentations.{name}.base: {base!r} is not a defined augmentation")
            elif augmentations[base]["kind"] == "adversarial":
                problems.append(
                    f"models.augmentations.{name}.base: {base!r} is itself adversarial; "
                    "expected a non-adversarial augmentation"
                )
    for name, ext in models["external"].items():
        if ext["arch"] not in ARCH_NAMES:
            problems.append(
                f"models.external.{name}.arch: {ext['arch']!r} is not a registered "
                f"architecture; expected one of {sorted(ARCH_NAMES)}"
            )
    iris = cfg["iris"]
    observers = cfg["judgments"]["observers"]
    metrics_used = [("iris.metric", iris["metric"])]
    metrics_used += [
        (f"judgments.observers.simulated[{i}].metric", o["metric"]) for i, o in enumerate(observers["simulated"])
    ]
    metrics_used += [
        (f"judgments.observers.validation.metrics[{i}]", m) for i, m in enumerate(observers["validation"]["metrics"])
    ]
    names = [observer_name(o) for o in observers["simulated"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(
                f"judgments.observers.simulated[{i}]: observer name {name!r} is used twice; "
                "expected a unique name (set 'name' when two observers share a metric)"
            )
    metrics_used += [(f"iris.loss_defs.{k}.metric", v["metric"]) for k, v in iris["loss_defs"].items() if "metric" in v]
    metrics_used.append(("engstrom.interpolation.metric", cfg["engstrom"]["interpolation"]["metric"]))
    for key, name in metrics_used:
        if name not in METRIC_NAMES:
            problems.append(f"{key}: {name!r} is not a registered metric; expected one of {sorted(METRIC_NAMES)}")
    for j, name in enumerate(iris["losses"]):
        if name not in iris["loss_defs"]:
            problems.append(
                f"iris.losses[{j}]: {name!r} is neither a registered loss "
                f"{list(IRI_LOSS_KINDS)} nor defined in iris.loss_defs"
            )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def observer_name(observer: Mapping) -> str:
    """The label of a simulated observer population: its name, else its metric."""
    return observer.get("name") or observer["metric"]


@dataclass(frozen=True, order=True)
class ModelSpec:
    dataset: str
    arch: str
    objective: str
    augmentation: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.objective}-{self.augmentation}-s{self.seed}"

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.name}"

    @classmethod
    def parse(cls, model_id: str) -> ModelSpec:
        m = MODEL_ID_RE.match(model_id)
        if not m:
            raise ConfigError(
                f"not a model id: {model_id!r}; expected "
                "'{dataset}/{arch}-{objective}-{augmentation}-s{seed}'"
            )
        d = m.groupdict()
        return cls(d["dataset"], d["arch"], d["objective"], d["augmentation"], int(d["seed"]))


def _excluded(spec: ModelSpec, rules: list[Mapping[str, Any]]) -> bool:
    return any(all(getattr(spec, k) == v for k, v in rule.items()) for rule in rules)


def model_grid(cfg: Mapping[str, Any]) -> list[ModelSpec]:
    """The models to train: the union of the grid blocks' products, minus
    exclusions, in a stable order."""
    specs = set()
    for block in cfg["models"]["grid"]:
        for combo in itertools.product(
            block["datasets"], block["archs"], block["objectives"], block["augmentations"], block.get("seeds", [0])
        ):
            spec = ModelSpec(*combo)
            if not _excluded(spec, cfg["models"]["exclude"]):
                specs.add(spec)
    return sorted(specs)


def datasets_used(cfg: Mapping[str, Any]) -> list[str]:
    names = {s.dataset for s in model_grid(cfg)}
    names.update(k.split("/")[0] for k in cfg["models"]["external"])
    return sorted(names)


def model_settings(cfg: Mapping[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """Everything that makes one grid model (passed to its training job as
    params, so a change to any of it retrains exactly the affected models)."""
    models = cfg["models"]
    objective = models["objectives"][spec.objective]
    augs = models["augmentations"]
    used = {spec.augmentation: augs[spec.augmentation]}
    if augs[spec.augmentation]["kind"] == "adversarial":
        base = augs[spec.augmentation].get("base", "standard")
        used[base] = augs[base]
    recipe = {**models["train"], **objective.get("train", {})}
    return {
        "id": spec.id,
        "arch": spec.arch,
        "width": models["width"],
        "stem_stride": models["stem_stride"],
        "seed": spec.seed,
        "objective": objective,
        "objective_name": spec.objective,
        "augmentation": spec.augmentation,
        "augmentations": used,
        "recipe": recipe,
        "device": cfg["device"],
    }


def iri_settings(cfg: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """What makes one IRI job (besides model, layer and seed type)."""
    iris = cfg["iris"]
    spec = iris["loss_defs"][loss]
    keys = ("steps", "step_size", "step_schedule", "optimizer", "keep_best", "threshold", "seed", "log_every")
    return {
        "loss": loss,
        "loss_spec": spec,
        "metric": spec.get("metric", iris["metric"]),
        **{k: iris[k] for k in keys},
        "device": cfg["device"],
    }


def engstrom_settings(cfg: Mapping[str, Any], procedure: str) -> dict[str, Any]:
    """What makes one procedure's job of the Engstrom stage (iriflow.engstrom):
    the layer, the seed, the procedure's section and, for feature addition,
    the visualisation's choice of coordinates (it adds those)."""
    e = cfg["engstrom"]
    extra = {k: e["features"][k] for k in ("k", "n_examples")} if procedure == "addition" else {}
    return {"layer": e["layer"], "seed": e["seed"], **e[procedure], **extra, "device": cfg["device"]}
