"""The IRI set: the IRIs of one model at one layer under one IRI loss from one
seed type (and, for SimCLR training snapshots, one epoch), with everything
that made them. It is the one artefact that the IRI stage writes and that the
judgments, proxies, survey, figures and checkpoint analyses read, so this
module is the only code that writes or reads an IRI set file and the only
code that formats or parses a set id.

A set id is ``<dataset>/<model>/<layer>/<loss>/<seed_type>`` with an optional
``/epoch<NNNN>`` for a training snapshot's IRIs (``SetId``).

The file (``iris.npz``) is a plain NumPy archive, readable without torch:
``iris``, ``seeds`` and ``targets`` (float32 [N,C,H,W] in [0,1]),
``target_index`` (the targets' indices in the test split), ``target_label``,
``rel_dist`` (final relative representation distance per IRI), ``loss``
(final value of the IRI loss), ``converged`` (bool, ``rel_dist`` below the
threshold), the set id and the settings that made the set (model, layer,
loss spec, seed type, metric, steps, step size, schedule, threshold, ...)
as JSON.

An inversion's set records in ``extra.restarts`` how many restarts of the
step schedule each IRI took (iriflow.iri.generate).

Procedures that are not inversions (iriflow.engstrom: feature visualisation,
feature addition, interpolation) store their sets in the same file: ``iris``
are the images the procedure made and ``seeds`` where it started, and what
does not fit the common fields goes into ``extra``, named arrays stored as
``extra.<name>``. A 4-D float ``extra`` array is a further image bank that
trials may refer to (``"<name>:<i>"``, ``IRISet.images``); any other is a
per-item value (e.g. the coordinate a feature set maximised). The module that
writes a procedure's sets documents its fields."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import load_npz, save_npz

FILENAME = "iris.npz"
SET_PARTS = ("dataset", "model", "layer", "loss", "seed_type")
_EPOCH = re.compile(r"^epoch(\d{4})$")
_PART = re.compile(r"^[A-Za-z0-9_.+-]+$")
ARRAYS = ("iris", "seeds", "targets", "target_index", "target_label", "rel_dist", "loss", "converged")
EXTRA_PREFIX = "extra."
_EXTRA_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
BANKS = ("iri", "target", "seed")


# The sets of the procedures that are not inversions (iriflow.engstrom): the
# loss and seed-type parts of their ids (None: the procedure's configured seed type).
PROCEDURES = {
    "features": ("feature-vis", None),
    "addition": ("feature-add", "test-image"),
    "interpolation": ("interpolation", "pixel-blend"),
}


class IRISetError(ValueError):
    """A set id or an IRI set file that is not what it should be."""


@dataclass(frozen=True, order=True)
class SetId:
    dataset: str
    model: str
    layer: str
    loss: str
    seed_type: str
    epoch: int | None = None

    def __post_init__(self) -> None:
        for name in SET_PARTS:
            value = getattr(self, name)
            if not isinstance(value, str) or not _PART.match(value):
                raise IRISetError(f"set id part {name}={value!r}: expected letters, digits, '_', '.', '+' or '-'")

    def __str__(self) -> str:
        base = "/".join(getattr(self, p) for p in SET_PARTS)
        return base if self.epoch is None else f"{base}/epoch{self.epoch:04d}"

    @classmethod
    def parse(cls, text: str) -> SetId:
        parts = str(text).split("/")
        epoch = None
        if len(parts) == len(SET_PARTS) + 1:
            m = _EPOCH.match(parts[-1])
            if not m:
                raise IRISetError(f"not a set id: {text!r}; its last part must be epoch<NNNN>")
            epoch = int(m.group(1))
            parts = parts[:-1]
        if len(parts) != len(SET_PARTS):
            raise IRISetError(f"not a set id: {text!r}; expected {'/'.join(SET_PARTS)}[/epoch<NNNN>]")
        return cls(*parts, epoch=epoch)

    @property
    def model_id(self) -> str:
        """``<dataset>/<model>``, the id of the model that made the set."""
        return f"{self.dataset}/{self.model}"

    def with_epoch(self, epoch: int | None) -> SetId:
        return SetId(self.dataset, self.model, self.layer, self.loss, self.seed_type, epoch)


def procedure_set_id(model_id: str, layer: str, procedure: str, seed_type: str | None = None) -> SetId:
    """The id of a procedure's set (``PROCEDURES``) for one model (``<dataset>/<model>``)."""
    loss, start = PROCEDURES[procedure]
    dataset, model = model_id.split("/", 1)
    return SetId(dataset, model, layer, loss, start or seed_type)


def split_set_ids(set_ids) -> dict[str, list[str]]:
    """Columns dataset, model, layer, loss, seed_type (and epoch, -1 for final
    models) of a sequence of set ids, e.g. to add to a table."""
    ids = [SetId.parse(s) for s in set_ids]
    cols = {p: [getattr(i, p) for i in ids] for p in SET_PARTS}
    cols["epoch"] = [-1 if i.epoch is None else i.epoch for i in ids]
    return cols


@dataclass
class IRISet:
    """One IRI set (module docstring). Arrays are NumPy; images float32."""

    id: SetId
    iris: np.ndarray
    seeds: np.ndarray
    targets: np.ndarray
    target_index: np.ndarray
    target_label: np.ndarray
    rel_dist: np.ndarray
    loss: np.ndarray
    converged: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.id, str):
            self.id = SetId.parse(self.id)
        self.iris, self.seeds, self.targets = (
            np.asarray(a, dtype=np.float32) for a in (self.iris, self.seeds, self.targets)
        )
        self.target_index = np.asarray(self.target_index, dtype=np.int64)
        self.target_label = np.asarray(self.target_label, dtype=np.int64)
        self.rel_dist = np.asarray(self.rel_dist, dtype=np.float32)
        self.loss = np.asarray(self.loss, dtype=np.float32)
        self.converged = np.asarray(self.converged, dtype=bool)
        n = len(self.iris)
        if self.iris.ndim != 4 or self.seeds.shape != self.iris.shape or self.targets.shape != self.iris.shape:
            raise IRISetError(
                f"IRI set {self.id}: iris, seeds and targets must share one [N,C,H,W] shape, got "
                f"{self.iris.shape}, {self.seeds.shape}, {self.targets.shape}"
            )
        for name in ("target_index", "target_label", "rel_dist", "loss", "converged"):
            if getattr(self, name).shape != (n,):
                raise IRISetError(f"IRI set {self.id}: {name} must have shape ({n},), got {getattr(self, name).shape}")
        extra = {}
        for name, value in self.extra.items():
            if not _EXTRA_NAME.match(name) or name in ARRAYS or name in BANKS:
                raise IRISetError(
                    f"IRI set {self.id}: extra array name {name!r}: expected lower-case letters, digits and '_', "
                    f"none of {list(ARRAYS + BANKS)}"
                )
            value = np.asarray(value)
            if _is_bank(value):
                if value.shape[1:] != self.iris.shape[1:]:
                    raise IRISetError(
                        f"IRI set {self.id}: image bank {name!r} has images of shape {value.shape[1:]}, "
                        f"expected {self.iris.shape[1:]} as in iris"
                    )
                value = value.astype(np.float32)
            extra[name] = value
        self.extra = extra

    def __len__(self) -> int:
        return len(self.iris)

    @property
    def metric(self) -> str:
        """The perceptual distance the IRI loss used (if any)."""
        return self.settings.get("metric", "")

    @property
    def loss_spec(self) -> Mapping[str, Any]:
        return self.settings.get("loss_spec", {"kind": self.id.loss})

    def images(self) -> dict[str, np.ndarray]:
        """The image banks that trials refer to: ``iri:<i>``, ``target:<i>``,
        ``seed:<i>``, and ``<name>:<i>`` for every 4-D float ``extra`` array."""
        banks = dict(zip(BANKS, (self.iris, self.targets, self.seeds)))
        return banks | {k: v for k, v in self.extra.items() if _is_bank(v)}

    def save(self, path: str | Path) -> None:
        """Write the set to ``path`` (an ``iris.npz``) atomically; equal sets give equal bytes."""
        arrays = {name: getattr(self, name) for name in ARRAYS}
        arrays |= {EXTRA_PREFIX + name: value for name, value in self.extra.items()}
        meta = {"id": str(self.id), "settings": self.settings}
        save_npz(path, **arrays, meta=np.array(json.dumps(meta, sort_keys=True, default=_json_default)))

    @classmethod
    def load(cls, path: str | Path) -> IRISet:
        try:
            z = load_npz(path)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise IRISetError(f"{path}: not a readable IRI set file ({e})") from e
        missing = [k for k in (*ARRAYS, "meta") if k not in z]
        if missing:
            raise IRISetError(f"{path}: not an IRI set file (missing {missing})")
        meta = json.loads(str(z["meta"]))
        extra = {k.removeprefix(EXTRA_PREFIX): v for k, v in z.items() if k.startswith(EXTRA_PREFIX)}
        return cls(SetId.parse(meta["id"]), *(z[k] for k in ARRAYS), settings=meta["settings"], extra=extra)


def _is_bank(value: np.ndarray) -> bool:
    """A 4-D float array: a bank of [C,H,W] images."""
    return value.ndim == 4 and value.dtype.kind == "f"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable in IRI set settings: {type(obj).__name__}")
