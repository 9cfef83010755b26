"""The code keeps one style without review effort: ruff (lint and format) for
Python, snakefmt for the rules; settings in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "--output-format", "concise", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--check", "Snakefile", "rules"],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_style_is_clean(cmd):
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} (fix with: ./run python -m {cmd[0]} ...):\n{proc.stdout}{proc.stderr}"
    )


def test_no_project_file_names_a_path_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = [str(ROOT.parent) + "/", "../" + "shared"]  # (split, so this line does not match itself)
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".mat", ".png", ".npz", ".pdf"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {needle}" for needle in outside if needle in text]
    assert not hits, hits


def test_library_and_tests_do_not_edit_sys_path():
    offenders = []
    for folder in ("src", "tests", "scripts", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue
            text = path.read_text()
            if "sys.path.insert" in text or "sys.path.append" in text or "parents[2]" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
