import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# The RSA stage's human data (92 images, similarity judgments) are test fixtures
# beside the checkout, never committed: the tests use them as the download cache
# (rule rsa_data checks their sha256), so runs of the whole workflow stay offline.
# The second place is where they sit on the project's own machines.
RSA92_CANDIDATES = [ROOT.parent / "shared" / "data" / "rsa92", Path("/work/shared/data/rsa92")]
if not os.environ.get("IRIFLOW_RSA92_CACHE"):
    found = next((p for p in RSA92_CANDIDATES if p.is_dir()), None)
    if found:
        os.environ["IRIFLOW_RSA92_CACHE"] = str(found)


def run_snakemake(*args: str, cwd: Path = ROOT, check: bool = True, timeout: int = 600):
    """Run the workflow's snakemake (the one next to this interpreter)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    proc = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def repo_root() -> Path:
    return ROOT
