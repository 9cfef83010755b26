import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema" / "config.schema.yaml"
# The 92-image human data committed with the workflow (resources/rsa92/NOTICE).
RSA92 = ROOT / "resources" / "rsa92"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run_snakemake(*args: str, cwd: Path = ROOT, check: bool = True, timeout: int = 600):
    """Run the workflow's snakemake (the one next to this interpreter)."""
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def run_without_torch(code: str) -> str:
    """Run ``code`` in a fresh interpreter in which importing torch (or
    torchvision) fails, as in the workflow's torch-free environments;
    returns its stdout."""
    guard = (
        "import builtins\n"
        "_real = builtins.__import__\n"
        "def _guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "        raise ImportError(f'{name} is not allowed here')\n"
        "    return _real(name, *a, **k)\n"
        "builtins.__import__ = _guard\n"
    )
    proc = subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one intra-op thread is as fast and immune to CPU
    contention (two threads on a busy machine are many times slower). Use
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
