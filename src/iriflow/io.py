"""Small I/O helpers every stage uses: atomic writes, deterministic archives,
JSON, and the provenance record written next to each output."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

# Fixed timestamp for archive members, so equal contents give equal bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PROVENANCE_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "seaborn",
    "piq",
    "mlxtend",
    "snakemake",
)


# Temporaries of atomic writes: ".<name>.<host>~<pid>.<random>.tmp" beside the
# target, so that one left by a killed writer can be told from a live one.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.~/]*)~(?P<pid>\d+)\.[^.]+\.tmp$")
STALE_AFTER_S = 24 * 3600  # a temporary of another host this old is abandoned


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if
    the block finishes (its bytes flushed to disk first). A crash leaves no
    file that looks complete; the temporary a killed process leaves behind is
    removed by the next write of ``path`` or by clean_stale_temporaries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent, recursive=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}~{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with open(tmp, "rb+") as f:  # a rename can reach the disk before the data does
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _writer_gone(host: str, pid: int, mtime: float) -> bool:
    """Whether the process that made a temporary has ended: a dead process of
    this host, or (other hosts, whose processes cannot be asked) one idle for
    STALE_AFTER_S."""
    if host == _host():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return time.time() - mtime > STALE_AFTER_S


def clean_stale_temporaries(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Remove the temporaries of atomic writes under ``folder`` whose writer
    is gone (killed mid-write); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, _, files in walk:
        for name in files:
            m = _TMP_RE.match(name)
            if not m:
                continue
            tmp = Path(root, name)
            try:
                if _writer_gone(m["host"], int(m["pid"]), tmp.stat().st_mtime):
                    tmp.unlink()
                    removed.append(tmp)
            except FileNotFoundError:  # its writer finished meanwhile
                continue
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_bytes_atomic(path, text.encode())


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays as an .npz readable by ``np.load``, atomically and with
    byte-identical output for identical inputs (np.savez stamps the time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    write_bytes_atomic(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def code_version(repo: str | os.PathLike | None = None) -> str:
    """The git commit of the workflow code, with '+dirty' for local changes
    (git finds the checkout from the package's own folder)."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def tex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell or caption."""
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


# Environment variables that say where a job ran and what it was granted.
PLACEMENT_ENV = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_partition": "SLURM_JOB_PARTITION",
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES",
}


def placement() -> dict[str, str]:
    """The host, and the scheduler's job id, partition and GPU grant when set."""
    found = {key: os.environ[var] for key, var in PLACEMENT_ENV.items() if os.environ.get(var)}
    return {"host": socket.gethostname(), **found}


def provenance(
    config: Mapping[str, Any] | None = None, *, device: str = "cpu", wall_time_s: float | None = None, **extra: Any
) -> dict[str, Any]:
    """What made an output: the config subset used, code and package versions,
    the device and the wall time."""
    record = {
        "config": dict(config or {}),
        "code_version": code_version(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "placement": placement(),
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 3),
    }
    record.update(extra)
    return record


def write_provenance(path: str | os.PathLike, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    write_json(path, provenance(config, **kwargs))
