"""Configuration: the config files, schema validation with defaults, and
the model grid.

``plan_config`` is the workflow's one validation, called once by
rules/common.smk before any rule is planned. It re-reads the run's config
files (refusing what Snakemake's loader lets pass, such as a key given twice),
gives nested ``--config`` values the types the schema declares, validates
against config/schema/config.schema.yaml and fills its defaults
(``validate_config``), and runs the checks the schema cannot express
(iriflow.checks: names that refer to each other, the layers of each
architecture, the files named, the device). All problems are reported at
once in one ConfigError, each with its key path (``models.grid[0].archs[1]``),
the file and line that set it, and what was expected.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


# A problem: the key path (keys and list indices), what is wrong there, and
# optionally the key whose setting caused it when the path itself is unset.
Problem = tuple[list, str] | tuple[list, str, list]


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


def _describe(error: jsonschema.ValidationError, root: Mapping) -> Problem:
    """(key path, what is wrong and what was expected) of a schema error."""
    path = list(error.absolute_path)
    schema = _resolve(error.schema, root) if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        pattern_ok = schema.get("additionalProperties")
        extras = [k for k in error.instance if k not in allowed] if pattern_ok is False else []
        if extras:
            return path + [extras[0]], f"unknown key {extras[0]!r}; expected one of {allowed}"
    expected = schema.get("description")
    return path, error.message + (f" (expected: {expected})" if expected and len(expected) < 200 else "")


def raise_problems(problems: Sequence[Problem], sources: ConfigSources | None = None) -> None:
    """Raise one ConfigError listing every problem (key path, what is wrong,
    and, given ``sources``, the file and line that set the key), if any."""
    lines = []
    for path, text, *cause in problems:
        where = ""
        if sources:
            origin = sources.origin(path)
            related = sources.origin(cause[0]) if cause else ""
            where = (
                f" [set in {origin}]"
                if origin
                else f" [{key_path(cause[0])} set in {related}]"
                if related
                else " [not set: the schema's default]"
            )
        line = f"{key_path(path)}: {text}{where}"
        if line not in lines:
            lines.append(line)
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def validate_config(
    config: Mapping[str, Any],
    schema: Mapping | str | Path,
    sources: ConfigSources | None = None,
    environment: Environment | None = None,
) -> dict:
    """Return a validated deep copy of ``config`` with defaults filled in;
    ``schema`` is the schema or its file (config/schema/config.schema.yaml).
    After the schema, iriflow.checks checks what it cannot express: names
    that refer to each other and, given an ``environment``, files and the
    device. Raises ConfigError listing every problem with its key path."""
    from .checks import check_environment, check_references

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
    # For if/then branches, report the innermost, most specific cause.
    raise_problems([_describe(jsonschema.exceptions.best_match([e]), schema) for e in errors], sources)
    fill_defaults(cfg, schema)
    problems = check_references(cfg)
    if environment is not None:
        problems += check_environment(cfg, environment)
    raise_problems(problems, sources)
    return cfg


# --- the config files and --config values of a run ---------------------------


def _duplicate_keys(node: yaml.Node, path: list) -> list[str]:
    """Keys given twice in one mapping anywhere under ``node``."""
    found = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                found.append(
                    f"line {key_node.start_mark.line + 1}: key {key_path(path + [key])} is given twice "
                    f"(first at line {seen[key].start_mark.line + 1}), and only the last would be used, "
                    "silently dropping the first; expected each key once (merge the two)"
                )
            elif key is not None:
                seen[key] = key_node
            found += _duplicate_keys(value_node, path + [key])
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, path + [i])
    return found


def read_config_file(path: str | Path) -> yaml.MappingNode:
    """The YAML node tree of one config file (JSON is YAML too), refusing
    what Snakemake's loader accepts silently or reports without naming the
    file: a syntax error (with its line and column), an empty file, a top
    level that is not a mapping of keys, a key given twice. Raises ConfigError."""
    expected = "expected a mapping of configuration keys such as 'results:' or 'models:'"
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        data = e.object
        line, column = data.count(b"\n", 0, e.start) + 1, e.start - data.rfind(b"\n", 0, e.start)
        raise ConfigError(f"{path}: line {line}, column {column}: byte {e.start} is not UTF-8; {expected}") from e
    try:
        node = yaml.compose(text, Loader=_SAFE_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(str(x) for x in (e.context, e.problem) if x)
        raise ConfigError(f"{path}: {where}not valid YAML ({what}); {expected}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e}); {expected}") from e
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        raise ConfigError(f"{path}: the file is empty; {expected} (config/schema/config.schema.yaml lists them)")
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the single value {node.value!r}"
        raise ConfigError(f"{path}: line {node.start_mark.line + 1}: the top level is {kind}; {expected}")
    duplicates = _duplicate_keys(node, [])
    if duplicates:
        raise ConfigError("\n  ".join(f"{path}: {d}" for d in duplicates))
    return node


def _find_node(node: yaml.Node, path: Sequence) -> yaml.Node | None:
    """The node at ``path`` in a file's tree, or None where the file does not set it."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not match:
                return None
            node = match[-1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def _sets(value: Any, path: Sequence) -> bool:
    """Whether the (--config) mapping ``value`` sets ``path`` (or a part of it wholesale)."""
    for part in path:
        if not isinstance(value, Mapping):
            return True
        if part not in value:
            return False
        value = value[part]
    return True


@dataclass
class ConfigSources:
    """Where a run's configuration came from: its config files in the order
    Snakemake applied them (a later one overrides an earlier one) and the
    ``--config`` values, applied last. ``origin`` names what set a key."""

    files: list[tuple[str, yaml.MappingNode]] = field(default_factory=list)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, files: Iterable[str | Path], overrides: Mapping[str, Any] | None = None) -> ConfigSources:
        """Read every file (read_config_file); one ConfigError names each bad one."""
        read, problems = [], []
        for name in dict.fromkeys(str(f) for f in files):
            try:
                read.append((name, read_config_file(name)))
            except ConfigError as e:
                problems.append(str(e))
        if problems:
            raise ConfigError("invalid configuration file:\n  " + "\n  ".join(problems))
        return cls(read, dict(overrides or {}))

    def origin(self, path: Sequence) -> str:
        """'--config', 'FILE, line N', or '' (not set by the user: a default)."""
        if path and _sets(self.overrides, path):
            return "--config"
        for name, root in reversed(self.files):
            node = _find_node(root, path) if path else None
            if node is not None:
                return f"{name}, line {node.start_mark.line + 1}"
        return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (True is not 1)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _accepts(schema: Any, value: Any, root: Mapping) -> bool:
    """Whether ``schema`` allows ``value``'s type (and enum or const value);
    ranges and patterns are left to validation."""
    if isinstance(schema, bool):
        return schema
    schema = _resolve(schema, root)
    if "const" in schema and not _same(schema["const"], value):
        return False
    if "enum" in schema and not any(_same(v, value) for v in schema["enum"]):
        return False
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        kind = _json_type(value)
        if kind not in types and not (kind == "integer" and "number" in types):
            return False
    for key in ("oneOf", "anyOf"):
        if key in schema and not any(_accepts(s, value, root) for s in schema[key]):
            return False
    return True


def _children(schemas: Iterable[Any], key: Any, root: Mapping) -> list:
    """The subschemas under ``schemas`` that apply to ``key`` of an object
    (key None: to the items of an array), those of if/then branches included."""
    out = []
    for sub in schemas:
        if not isinstance(sub, Mapping):
            continue
        sub = _resolve(sub, root)
        if key is None:
            if isinstance(sub.get("items"), Mapping):
                out.append(sub["items"])
        elif key in sub.get("properties", {}):
            out.append(sub["properties"][key])
        elif isinstance(sub.get("additionalProperties"), Mapping):
            out.append(sub["additionalProperties"])
        branches = [b.get(k) for b in sub.get("allOf", []) for k in ("then", "else") if isinstance(b, Mapping)]
        branches += [*sub.get("allOf", []), *sub.get("anyOf", []), *sub.get("oneOf", [])]
        out += _children([b for b in branches if b], key, root)
    return out


def coerce_overrides(value: Any, schema: Mapping, _schemas: list | None = None) -> Any:
    """``--config`` values with strings given the type the schema declares
    where it allows no string. Snakemake reads the top level of ``--config
    key=value`` as a number or boolean, but every value nested inside
    (``targets={n: 3}``) arrives as a string. Only integers, numbers,
    booleans and null are made, where the schema asks for them; anything
    else is left for validation to report."""
    schemas = [schema] if _schemas is None else _schemas
    if isinstance(value, Mapping):
        return {k: coerce_overrides(v, schema, _children(schemas, k, schema)) for k, v in value.items()}
    if isinstance(value, list):
        items = _children(schemas, None, schema)
        return [coerce_overrides(v, schema, items) for v in value]
    if not isinstance(value, str) or not schemas or any(_accepts(s, value, schema) for s in schemas):
        return value
    for typed in _scalars(value):
        if any(_accepts(s, typed, schema) for s in schemas):
            return typed
    return value


def _scalars(text: str) -> list[Any]:
    """The integer, number, boolean or null ``text`` may stand for."""
    out: list[Any] = []
    for parse in (int, float):
        try:
            number = parse(text)
        except ValueError:
            continue
        if math.isfinite(number):
            out.append(number)
    try:
        typed = yaml.load(text, Loader=_SAFE_LOADER)  # true/false/yes/no, null/~
    except yaml.YAMLError:
        return out
    return out + ([typed] if typed is None or isinstance(typed, bool) else [])


def merge(base: dict, update: Mapping) -> dict:
    """``base`` updated in place as Snakemake merges configs: mappings key by
    key, anything else replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return base


@dataclass
class Environment:
    """Where a run's jobs run: the executor (None: local), whether this
    process is itself a job on a cluster node, and whether CUDA is there
    (None: ask torch, in a subprocess, when device: cuda needs it). Paths in
    the config are relative to the working directory, as in the jobs."""

    executor: str | None = None
    remote_job: bool = False
    cuda: bool | None = None

    @property
    def local(self) -> bool:
        return self.executor in (None, "local", "dryrun", "touch")


def _snakemake_args(argv: Sequence[str]) -> Any:
    """``argv`` parsed by Snakemake's own parser (profiles applied, its
    messages silenced), or None when it is not a snakemake command line."""
    import contextlib
    import io

    try:
        from snakemake.cli import parse_args

        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return parse_args(list(argv))[1]
    except (Exception, SystemExit):
        return None


def run_executor(argv: Sequence[str]) -> str | None:
    """The executor this snakemake command line asks for ('local', 'slurm',
    ...; profiles included), or None when ``argv`` is not a snakemake
    command line.

    The Snakefile cannot learn this from ``workflow``: Snakemake reads the
    Snakefile before it picks the executor (while rules are read,
    workflow.local_exec is True and workflow.dryrun False whatever the
    command line says), and a dry run replaces the executor by 'dryrun'."""
    args = _snakemake_args(argv)
    return None if args is None else (getattr(args, "executor", None) or "local")


def plan_config(
    config: Mapping[str, Any],
    schema: Mapping | str | Path,
    config_files: Iterable[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
    environment: Environment | None = None,
) -> dict:
    """The validated configuration of a run (the module docstring says what
    is checked). ``config`` is what Snakemake merged from ``config_files``
    and the ``--config`` values ``overrides``; ``environment`` says where the
    run plans and where its jobs run."""
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    sources = ConfigSources.read(config_files, overrides)
    cfg = merge(copy.deepcopy(dict(config)), coerce_overrides(dict(overrides or {}), schema))
    return validate_config(cfg, schema, sources, environment)


def plan_workflow_config(workflow: Any, config: Mapping[str, Any]) -> dict:
    """plan_config for the running Snakemake ``workflow`` (rules/common.smk
    calls this once): its config files in the order Snakemake applied them
    (the Snakefile's ``configfile:``, then each --configfile), its --config
    values, the working directory, and the executor of the command line.

    A job that Snakemake runs on a cluster node (workflow.remote_exec) reads
    the Snakefile again there: the configuration is checked again, but not
    the files and the device, which the main process checked before it
    submitted the job (the job's own start checks CUDA on its node, and the
    trials tables may have been remade by this run meanwhile)."""
    import sys

    cli = [str(f) for f in workflow.config_settings.configfiles]
    files = [str(f) for f in workflow.configfiles if str(f) not in cli] + cli
    unique = list({os.path.realpath(f): f for f in reversed(files)}.values())[::-1]
    remote = bool(workflow.remote_exec)
    environment = Environment(executor=None if remote else run_executor(sys.argv[1:]), remote_job=remote)
    schema = Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml"
    return plan_config(config, schema, unique, dict(workflow.config_settings.config), environment)


def check_command_line(argv: Sequence[str]) -> int:
    """Check the config files of a snakemake command line (``./run`` does
    this first: Snakemake reads --configfile files before the Snakefile, and
    reports a broken one without its name). Prints the problems; 0 if none."""
    import sys

    args = _snakemake_args(argv)
    try:
        ConfigSources.read(getattr(args, "configfile", None) or [])
    except ConfigError as e:
        print(f"ConfigError: {e}", file=sys.stderr)
        return 1
    return 0


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


def excluded_by(spec: ModelSpec, rule: Mapping[str, Any]) -> bool:
    """Whether a models.exclude entry matches ``spec`` (every field it names)."""
    return all(getattr(spec, k) == v for k, v in rule.items())


def grid_products(cfg: Mapping[str, Any]) -> list[ModelSpec]:
    """The union of the grid blocks' products, before exclusions, sorted."""
    specs = set()
    for block in cfg["models"]["grid"]:
        for combo in itertools.product(
            block["datasets"], block["archs"], block["objectives"], block["augmentations"], block.get("seeds", [0])
        ):
            specs.add(ModelSpec(*combo))
    return sorted(specs)


def model_grid(cfg: Mapping[str, Any]) -> list[ModelSpec]:
    """The models to train: the union of the grid blocks' products, minus
    exclusions, in a stable order."""
    rules = cfg["models"]["exclude"]
    return [s for s in grid_products(cfg) if not any(excluded_by(s, r) for r in rules)]


def model_ids(cfg: Mapping[str, Any]) -> list[str]:
    """Every model of the run: the grid's, then the external ones."""
    return [m.id for m in model_grid(cfg)] + sorted(cfg["models"]["external"])


def trials_tables(cfg: Mapping[str, Any]) -> list[str]:
    """The trials table of every model (written by rule simulate_judgments)."""
    return [f"{cfg['results']}/judgments/{m}/trials.csv" for m in model_ids(cfg)]


def datasets_used(cfg: Mapping[str, Any]) -> list[str]:
    names = {s.dataset for s in model_grid(cfg)}
    names.update(k.split("/")[0] for k in cfg["models"]["external"])
    return sorted(names)


def dataset_settings(cfg: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What makes one dataset's prepared form: the keys of the data block its
    reader declares (iriflow.datasets). Not another dataset's keys, nor
    data.root and data.download (where downloads are cached and whether one
    may run: no image depends on them; the job reads them from the config)."""
    from .datasets import DATASETS

    return {k: cfg["data"][k] for k in DATASETS[dataset].settings}


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
    }


def iri_settings(cfg: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """What makes the IRIs of one loss (besides model, layer and seed type).
    Not the device nor iri_run_options: no IRI depends on them (jobs read
    them from the config when they run; iriflow.runtime)."""
    iris = cfg["iris"]
    spec = iris["loss_defs"][loss]
    keys = (
        "steps",
        "step_size",
        "step_schedule",
        "optimizer",
        "momentum",
        "coarse_to_fine",
        "restarts",
        "keep_best",
        "threshold",
        "seed",
        "stop_every",
        "amp",
        "channels_last",
    )
    return {
        "loss": loss,
        "loss_spec": spec,
        "metric": spec.get("metric", iris["metric"]),
        **{k: iris[k] for k in keys},
    }


def model_design(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What the analysis needs of the models section: the grid, the external
    models, augmentations and objectives (design factors and level orders,
    iriflow.analysis.model_factors and preferred_levels). Not resources,
    widths or training settings: changing those reruns no analysis by itself."""
    return {k: cfg["models"][k] for k in ("grid", "external", "augmentations", "objectives")}


def trial_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What makes the trials of an IRI set and the simulated observers'
    draws (iriflow.judgments.set_trials, simulate_observers): the
    judgments keys alternatives, matching_k, n_catch and seed. Not the
    observers (calibrated in their own rule) nor the real responses: adding
    a response file reruns no simulation."""
    return {k: cfg["judgments"][k] for k in ("alternatives", "matching_k", "n_catch", "seed")}


def observer_metrics(cfg: Mapping[str, Any]) -> list[str]:
    """The simulated observers' perceptual metrics (iriflow.metrics), in
    config order, each once: the distance columns of every IRI set's iris.csv
    (iriflow.iri.save_job). IRI jobs read them from the config, not as a
    param: a changed observer list remakes no IRI, and an iris.csv keeps the
    columns of the observers configured when its set was made."""
    return list(dict.fromkeys(o["metric"] for o in cfg["judgments"]["observers"]["simulated"]))


def iri_run_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What an IRI job (generate_iris, checkpoint_iris) reads from the config
    when it runs, beside its params (iri_settings): the largest batch
    (iris.max_batch), the loss curve's resolution (iris.log_every) and the
    distance columns of iris.csv (observer_metrics). No IRI depends on them,
    so changing them remakes none."""
    return {
        "max_batch": cfg["iris"]["max_batch"],
        "log_every": cfg["iris"]["log_every"],
        "distances": observer_metrics(cfg),
    }


def engstrom_settings(cfg: Mapping[str, Any], procedure: str) -> dict[str, Any]:
    """What makes one procedure's job of the Engstrom stage (iriflow.engstrom):
    the layer, the seed, the procedure's section and, for feature addition,
    the visualisation's choice of coordinates (it adds those)."""
    e = cfg["engstrom"]
    extra = {k: e["features"][k] for k in ("k", "n_examples")} if procedure == "addition" else {}
    return {"layer": e["layer"], "seed": e["seed"], **e[procedure], **extra}


if __name__ == "__main__":
    import sys

    sys.exit(check_command_line(sys.argv[1:]))
