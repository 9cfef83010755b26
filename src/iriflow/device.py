"""Device selection from config: 'auto' (CUDA when present, else CPU), 'cpu'
or 'cuda' (an error if asked for and absent)."""

from __future__ import annotations

import logging
import os

import torch

from .io import placement

log = logging.getLogger(__name__)
CHOICES = ("auto", "cpu", "cuda")


def select_device(preference: str = "auto") -> torch.device:
    if preference not in CHOICES:
        raise ValueError(f"device must be one of {CHOICES}, got {preference!r}")
    has_cuda = torch.cuda.is_available()
    if preference == "cuda" and not has_cuda:
        raise RuntimeError(
            "config asks for device 'cuda' but torch sees no CUDA device (set device: auto to fall back to the CPU)"
        )
    device = torch.device("cuda" if preference != "cpu" and has_cuda else "cpu")
    granted = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if granted and not has_cuda:
        # e.g. a SLURM job given --gpus on a node whose GPU torch cannot use
        log.warning("the scheduler granted GPU(s) %s but torch sees no CUDA device: running on the CPU", granted)
    log.info("device: %s; placement: %s", describe(device), placement())
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format of a stage's ``channels_last`` setting (models.train,
    models.eval, iris): channels-last convolutions are faster on CUDA and on
    the CPU; results differ from contiguous ones by float rounding only."""
    return torch.channels_last if channels_last else torch.contiguous_format
