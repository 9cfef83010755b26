"""A one-node SLURM cluster on localhost, for the cluster test.

It installs Debian's slurm and munge packages when they are missing (root
only), writes its configuration, state and logs into one private folder, starts
munged, slurmctld and slurmd in the foreground as child processes on free ports,
and stops them by PID. slurm.conf and gres.conf go to /etc/slurm, where job
steps look: Snakemake's job-step plugin drops SLURM_CONF from the environment of
its nested srun, so a configuration elsewhere is not found inside jobs. An
existing /etc/slurm/slurm.conf that this module did not write is never touched.
The node has the machine's CPUs, most of its memory and
one GPU declared to SLURM (backed by /dev/null: jobs are granted it and see
CUDA_VISIBLE_DEVICES, the code itself falls back to the CPU).

Run by hand to try the SLURM profile on a workstation:
    ./run python tests/slurm_cluster.py   # Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
ETC = Path("/etc/slurm")
MARKER = "# written by iriflow tests/slurm_cluster.py"


def config_conflict() -> str | None:
    """Why this module must not write /etc/slurm/slurm.conf, or None."""
    conf = ETC / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text(errors="replace"):
        return f"{conf} exists and belongs to another SLURM set-up; not overwriting it"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def ensure_installed() -> str | None:
    """None when slurm and munge are usable, else why not (after trying apt-get as root)."""
    if all(_which(b) for b in BINARIES):
        return None
    if os.geteuid() != 0:
        return "slurm/munge are not installed and installing them needs root (apt-get)"
    if not shutil.which("apt-get"):
        return "slurm/munge are not installed and there is no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}"
    missing = [b for b in BINARIES if not _which(b)]
    return f"apt-get installed {PACKAGES} but {missing} are missing" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class LocalSlurm:
    """Start with up(), stop with down(); env is what clients (sbatch, squeue,
    snakemake) need to find the cluster."""

    def __init__(self, cpus: int | None = None, memory_mb: int | None = None, gpus: int = 1):
        if gpus not in (0, 1):  # one /dev/null device line can only stand for one GPU
            raise ValueError(f"gpus must be 0 or 1, got {gpus}")
        self.cpus = cpus or os.cpu_count() or 1
        # leave the OS some memory: SLURM refuses a node claiming more than it has
        self.memory_mb = memory_mb or max(1024, int(_memory_mb() * 0.85))
        self.gpus = gpus
        # munged runs as user munge and must reach its socket: a world-readable folder
        self.root = Path(tempfile.mkdtemp(prefix="iriflow-slurm-"))
        self.root.chmod(0o755)
        self.conf = ETC / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- configuration -------------------------------------------------------------
    def write_config(self) -> None:
        conflict = config_conflict()
        if conflict:
            raise RuntimeError(conflict)
        ETC.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.chown(self.root / "munge", "munge", "munge")
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        self.conf.write_text(
            "\n".join(
                [
                    MARKER,
                    "ClusterName=iriflow-test",
                    "SlurmctldHost=localhost",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.root / 'munge' / 'munge.sock'}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    # finished jobs stay visible to squeue this long (s): Snakemake's status
                    # queries need them, and the test lists every job of its run
                    "MinJobAge=3600",
                    "GresTypes=gpu",
                    f"NodeName=localhost CPUs={self.cpus} RealMemory={self.memory_mb}{gres} State=UNKNOWN",
                    "PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # a GPU SLURM can grant without hardware: File= is required, /dev/null will do
        (ETC / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n" if self.gpus else "")

    # --- daemons ----------------------------------------------------------------
    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def up(self, timeout: float = 60) -> LocalSlurm:
        self.write_config()
        sock = self.root / "munge" / "munge.sock"
        self._start(
            "munged",
            [
                "runuser",
                "-u",
                "munge",
                "--",
                _which("munged"),
                "--foreground",
                f"--socket={sock}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--log-file={self.root / 'munge' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                "--force",
            ],
        )
        self._wait(lambda: sock.exists(), timeout, "munged socket")
        self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._run("sinfo", "-h").returncode == 0, timeout, "slurmctld answering")
        self._start("slurmd", [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(lambda: self.node_state() in ("idle", "mixed"), timeout, "node localhost idle")
        return self

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_which(cmd[0]) or cmd[0], *cmd[1:]], capture_output=True, text=True, env=self.env, timeout=30
        )

    def _wait(self, ok, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited while waiting for {what}:\n{self.logs()}")
            if ok():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}:\n{self.logs()}")

    def node_state(self) -> str:
        proc = self._run("sinfo", "-h", "-N", "-o", "%T")
        return proc.stdout.strip().rstrip("*~#") if proc.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows: id, name, state, comment (Snakemake
        writes the rule and wildcards there) and the trackable resources."""
        fields = ("id", "name", "state", "comment", "tres")
        proc = self._run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k|%b")
        if proc.returncode != 0:
            raise RuntimeError(f"squeue failed: {proc.stderr}")
        return [dict(zip(fields, line.split("|", 4))) for line in proc.stdout.splitlines() if line.strip()]

    def cancel(self, job_id: str) -> None:
        proc = self._run("scancel", job_id)
        if proc.returncode != 0:
            raise RuntimeError(f"scancel {job_id} failed: {proc.stderr}")

    def logs(self, tail: int = 1500) -> str:
        parts = []
        for f in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")):
            parts.append(f"--- {f.name}\n{f.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def down(self, timeout: float = 10) -> None:
        """Cancel what is left, then stop slurmd, slurmctld and munged in that
        order: SIGTERM, then SIGKILL (slurmd ignores SIGTERM once its controller
        is gone). Each process is our own child, so no stale pid file can point
        the signal at a stranger."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self._run("scancel", "--user", str(os.geteuid()))
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.conf.exists() and MARKER in self.conf.read_text(errors="replace"):
            self.conf.unlink()
            (ETC / "gres.conf").unlink(missing_ok=True)


if __name__ == "__main__":
    reason = ensure_installed() or config_conflict()
    if reason:
        raise SystemExit(reason)
    cluster = LocalSlurm().up()
    print(f"{cluster._run('sinfo').stdout}configuration in {cluster.conf}; Ctrl-C stops the cluster.")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.down()
