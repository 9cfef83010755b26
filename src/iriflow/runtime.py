"""What every rule script does first: log to the rule's log file, set the
thread count Snakemake granted, and time the job for the provenance record;
and the run's device.

The device (config key ``device``) is read from the run's config when the
job runs, never passed as a rule param: no result depends on it, and a param
is a rerun trigger, so switching between auto, cpu and cuda reruns nothing."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_threads(threads: int) -> None:
    """Hold the job to the ``threads`` Snakemake granted, without importing
    torch: a rule that never uses torch must not pay its import (2-3 s per
    job). torch, if the script has already imported it, is told directly;
    a later import of torch (or of a BLAS library) reads the variables."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class RuleContext:
    def __init__(self, smk: Any):
        self.smk = smk
        self.start = time.perf_counter()
        log_files = list(getattr(smk, "log", []) or [])
        handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
        if log_files:
            Path(log_files[0]).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_files[0], mode="w"))
        logging.basicConfig(
            level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        set_threads(int(getattr(smk, "threads", 1) or 1))
        self.log = logging.getLogger(f"rule.{getattr(smk, 'rule', 'script')}")
        # an error that ends the job goes into the rule's log file too, not only to stderr
        sys.excepthook = self._log_uncaught

    def _log_uncaught(self, kind, value, tb) -> None:
        self.log.critical("the job failed: %s", value, exc_info=(kind, value, tb))

    def device(self, gpu: bool = True):
        """The torch device of the run's config (iriflow.device.select_device);
        the CPU when ``gpu`` is false (a job that asked for no GPU)."""
        from .device import select_device

        return select_device(self.smk.config["device"] if gpu else "cpu")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
