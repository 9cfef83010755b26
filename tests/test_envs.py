"""The conda envs in envs/ must pin exactly what requirements.lock pins,
every rule must name one of them and a log file, the scripts of the
torch-free envs must start without torch, and a job's thread count must
reach torch however late the script imports it."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_without_torch

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split(";")[0].strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_there_are_envs():
    assert {p.stem for p in ENV_FILES} >= {"torch", "analysis"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_equal_the_lock(env_file):
    env = yaml.safe_load(env_file.read_text())
    pins = lock_pins()
    deps = env["dependencies"]
    pip_deps = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip_deps, f"{env_file.name} has no pip section"
    for spec in pip_deps:
        assert "==" in spec, f"{env_file.name}: {spec!r} is not pinned"
        name, version = spec.split("==")
        key = name.lower().replace("_", "-")
        assert key in pins, f"{env_file.name}: {name} is not in requirements.lock"
        assert pins[key] == version, f"{env_file.name}: {name}=={version} but the lock has {pins[key]}"
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python == f"python={sys.version_info.major}.{sys.version_info.minor}"


def test_lock_pins_the_required_versions():
    pins = lock_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["snakemake"].startswith("9.")
    for name in ("pandas", "seaborn", "statsmodels", "pyyaml", "mlxtend", "jsonschema"):
        assert name in pins


def _rules(text: str):
    """(name, body) of each rule in a .smk file."""
    parts = re.split(r"^rule (\w+):\n", text, flags=re.M)
    return [(name, body.split("\nrule ")[0]) for name, body in zip(parts[1::2], parts[2::2])]


def _directive(body: str, name: str) -> str | None:
    """The quoted value of a rule's ``conda:`` or ``script:`` directive."""
    m = re.search(name + r':\s*\n\s*"([^"]+)"', body)
    return m.group(1) if m else None


@pytest.mark.parametrize("smk", sorted((ROOT / "rules").glob("*.smk")), ids=lambda p: p.name)
def test_every_job_rule_has_conda_and_log(smk):
    for name, body in _rules(smk.read_text()):
        if "output:" not in body:  # named targets only collect inputs
            continue
        assert "conda:" in body, f"{smk.name}: rule {name} has no conda: directive"
        assert "log:" in body, f"{smk.name}: rule {name} has no log: directive"
        env = _directive(body, "conda")
        assert env and (smk.parent / env).resolve().exists(), f"rule {name}: env file missing"


def _script_imports(script: Path) -> str:
    """The script's module-level import statements (what it needs to start)."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def _env_scripts(env: str) -> dict[str, Path]:
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, body in _rules(smk.read_text()):
            conda, script = _directive(body, "conda"), _directive(body, "script")
            if conda and script and Path(conda).stem == env:
                out[name] = (smk.parent / script).resolve()
    return out


@pytest.mark.parametrize("env", ["analysis", "survey"])
def test_scripts_of_the_torch_free_envs_start_without_torch(env):
    """The analysis and survey envs have no torch: every script of theirs,
    and the library modules it imports, must start without it (a torch
    import also costs each job 2-3 s)."""
    scripts = _env_scripts(env)
    assert scripts, f"no rule uses envs/{env}.yaml"
    code = "\n".join(_script_imports(p) for p in scripts.values())
    # the library's torch-free modules that rule scripts reach through lazy imports
    code += "\nimport iriflow.analysis, iriflow.scoring, iriflow.responses, iriflow.survey, iriflow.findings\n"
    code += (
        "import os, sys, types\nfrom iriflow.runtime import RuleContext\n"
        "RuleContext(types.SimpleNamespace(log=[], threads=3, rule='x'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'piq')),"
        " os.environ['OMP_NUM_THREADS'])\n"
    )
    assert run_without_torch(code).split() == ["[]", "3"]


def test_set_threads_tells_an_imported_torch_and_a_later_import():
    """A job's thread count reaches torch whether the script imported it
    before RuleContext (told directly) or imports it later (environment)."""
    code = (
        "import os, torch\n"
        "from iriflow.runtime import set_threads\n"
        "set_threads(3)\n"
        "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["3", "3", "3"]
    # torch reads OMP_NUM_THREADS at import (a count above the cores it caps): a job granted one thread
    later = "from iriflow.runtime import set_threads\nset_threads(1)\nimport torch\nprint(torch.get_num_threads())\n"
    out = subprocess.run([sys.executable, "-c", later], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["1"]
