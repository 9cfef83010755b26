import hashlib
import pickle

import numpy as np
import pytest
from PIL import Image

from iriflow import datasets as ds
from iriflow.config import dataset_settings
from iriflow.io import load_npz
from iriflow.targets import select_targets, target_arrays

DATA_CFG = {
    "root": "unused",
    "download": False,
    "split_seed": 0,
    "mnist5k": {"test_fraction": 0.2},
    "imagefolder": {"path": None, "image_size": 16, "test_fraction": 0.25},
}


def prepare_as_the_rule(name: str, data_cfg: dict) -> ds.Prepared:
    """What rule prepare_dataset passes: the dataset's settings (its params)
    and the download location (from the config). A reader that read any
    other key of the data block would fail here."""
    location = {k: data_cfg[k] for k in ds.LOCATION_KEYS}
    return ds.prepare(name, {**location, **dataset_settings({"data": data_cfg}, name)})


@pytest.fixture(scope="module")
def mnist():
    return prepare_as_the_rule("mnist5k", DATA_CFG)


def test_dataset_settings_are_the_keys_its_images_depend_on():
    cfg = {"data": DATA_CFG}
    assert dataset_settings(cfg, "mnist5k") == {"split_seed": 0, "mnist5k": {"test_fraction": 0.2}}
    assert dataset_settings(cfg, "imagefolder") == {"split_seed": 0, "imagefolder": DATA_CFG["imagefolder"]}
    assert dataset_settings(cfg, "cifar10") == dataset_settings(cfg, "cifar100") == {}  # fixed splits, md5-checked


def test_mnist5k_is_stratified_and_in_range(mnist):
    assert mnist.shape == (1, 28, 28) and mnist.num_classes == 10
    assert np.bincount(mnist.train_y).tolist() == [400] * 10
    assert np.bincount(mnist.test_y).tolist() == [100] * 10
    assert mnist.train_x.dtype == np.uint8 and mnist.train_x.max() == 255 and mnist.train_x.min() == 0
    x, y = mnist.tensors("test")
    assert x.dtype.is_floating_point and 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert x.shape == (1000, 1, 28, 28) and y.shape == (1000,)
    # MNIST's mean pixel is about 0.13; the constants are the train split's
    assert 0.10 < float(mnist.mean[0]) < 0.16 and 0.28 < float(mnist.std[0]) < 0.34
    pixels = mnist.train_x.astype(np.float64) / 255
    assert float(mnist.mean[0]) == pytest.approx(pixels.mean(), abs=1e-6)


def test_mnist_split_seed_changes_split_but_not_balance():
    other = ds.prepare("mnist5k", {**DATA_CFG, "split_seed": 1})
    base = ds.prepare("mnist5k", DATA_CFG)
    assert not np.array_equal(other.test_x, base.test_x)
    assert np.bincount(other.test_y).tolist() == [100] * 10


def test_prepared_roundtrip_is_deterministic(mnist, tmp_path):
    ds.save_prepared(tmp_path / "a.npz", mnist)
    ds.save_prepared(tmp_path / "b.npz", ds.prepare("mnist5k", DATA_CFG))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = ds.load_prepared(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.test_x, mnist.test_x)
    assert back.classes == mnist.classes and back.name == "mnist5k"
    np.testing.assert_allclose(back.mean, mnist.mean)


def test_load_prepared_names_a_bad_file(tmp_path):
    bad = tmp_path / "dataset.npz"
    bad.write_text("not an archive")
    with pytest.raises(ds.DataError, match="dataset.npz: not a prepared dataset"):
        ds.load_prepared(bad)


def test_stratified_split_rejects_empty_side():
    with pytest.raises(ds.DataError, match="class 1 has 1 images"):
        ds.stratified_split(np.array([0, 0, 0, 0, 1]), 0.5, 0)


# --- CIFAR: torchvision's on-disk format, written by the test ---------------


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar10(root, n_per_batch=6, seed=0):
    """A miniature cifar-10-batches-py/ in the real pickle format."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "batch_label": name,
            "labels": rng.integers(0, 10, n_per_batch).tolist(),
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_cases_per_batch": n_per_batch}, f)
    return folder, names


@pytest.fixture
def cifar_fixture(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder, names = _write_cifar10(tmp_path)
    md5 = {n: _md5(folder / n) for n in names}
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5[n]] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(folder / "batches.meta")})
    return tmp_path, folder


def test_cifar10_loader_reads_the_real_format(cifar_fixture):
    root, folder = cifar_fixture
    prep = prepare_as_the_rule("cifar10", {**DATA_CFG, "root": str(root)})
    assert prep.shape == (3, 32, 32) and prep.num_classes == 10
    assert len(prep.train_y) == 30 and len(prep.test_y) == 6
    assert prep.classes[0] == "airplane"
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    # row-major 3072 = 3 x 32 x 32 (channel planes): pixel (c=1, y=2, x=3)
    assert prep.test_x[4, 1, 2, 3] == raw["data"][4][1 * 1024 + 2 * 32 + 3]
    assert prep.test_y.tolist() == raw["labels"]


def test_cifar10_checksum_mismatch_is_rejected(cifar_fixture):
    root, folder = cifar_fixture
    with open(folder / "data_batch_3", "ab") as f:
        f.write(b"corrupt")
    with pytest.raises(ds.DataError, match="no verified copy") as err:
        ds.prepare("cifar10", {**DATA_CFG, "root": str(root)})
    assert "cifar-10-python.tar.gz" in str(err.value)


def test_cifar_offline_error_says_what_to_put_where(tmp_path):
    for name, archive in (("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")):
        with pytest.raises(ds.DataError) as err:
            ds.prepare(name, {**DATA_CFG, "root": str(tmp_path)})
        msg = str(err.value)
        assert archive in msg and str(tmp_path) in msg and "md5" in msg
        assert "data.download: true" in msg


def test_cifar100_loader_reads_the_real_format(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 8), ("test", 4)):
        with open(folder / name, "wb") as f:
            pickle.dump(
                {
                    "fine_labels": rng.integers(0, 100, n).tolist(),
                    "coarse_labels": rng.integers(0, 20, n).tolist(),
                    "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                },
                f,
            )
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]}, f
        )
    monkeypatch.setattr(CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": _md5(folder / "meta")})
    prep = ds.prepare("cifar100", {**DATA_CFG, "root": str(tmp_path)})
    assert prep.num_classes == 100 and prep.classes[7] == "c7"
    assert len(prep.train_y) == 8 and len(prep.test_y) == 4


# --- imagefolder -------------------------------------------------------------


def _write_folder(root, classes=("cat", "dog"), n=4, size=(20, 12)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_imagefolder_split_resize_and_classes(tmp_path):
    _write_folder(tmp_path / "imgs")
    cfg = {**DATA_CFG, "imagefolder": {**DATA_CFG["imagefolder"], "path": str(tmp_path / "imgs")}}
    prep = prepare_as_the_rule("imagefolder", cfg)
    assert prep.classes == ["cat", "dog"] and prep.shape == (3, 16, 16)
    assert np.bincount(prep.train_y).tolist() == [3, 3] and np.bincount(prep.test_y).tolist() == [1, 1]


def test_imagefolder_with_train_test_folders(tmp_path):
    _write_folder(tmp_path / "imgs" / "train", n=3)
    _write_folder(tmp_path / "imgs" / "test", n=2)
    cfg = {**DATA_CFG, "imagefolder": {**DATA_CFG["imagefolder"], "path": str(tmp_path / "imgs")}}
    prep = ds.prepare("imagefolder", cfg)
    assert len(prep.train_y) == 6 and len(prep.test_y) == 4


def test_imagefolder_errors_name_the_file(tmp_path):
    _write_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "dog" / "broken.png").write_text("not a png")
    cfg = {**DATA_CFG, "imagefolder": {**DATA_CFG["imagefolder"], "path": str(tmp_path / "imgs")}}
    with pytest.raises(ds.DataError, match="broken.png: not a readable image"):
        ds.prepare("imagefolder", cfg)
    with pytest.raises(ds.DataError, match="path is not set"):
        ds.prepare("imagefolder", DATA_CFG)


# --- targets -----------------------------------------------------------------


def test_targets_are_class_balanced_seeded_and_from_test_split(mnist):
    t = target_arrays(mnist, 20, seed=0)
    assert np.bincount(t["label"], minlength=10).tolist() == [2] * 10
    np.testing.assert_array_equal(t["images"], mnist.test_x[t["index"]])
    np.testing.assert_array_equal(t["label"], mnist.test_y[t["index"]])
    again = target_arrays(mnist, 20, seed=0)
    np.testing.assert_array_equal(again["index"], t["index"])
    other = target_arrays(mnist, 20, seed=1)
    assert not np.array_equal(other["index"], t["index"])
    assert len(set(t["index"].tolist())) == 20


def test_targets_remainder_spread_over_classes():
    labels = np.repeat(np.arange(4), 10)
    idx = select_targets(labels, 10, 4, seed=3)
    counts = np.bincount(labels[idx], minlength=4)
    assert counts.sum() == 10 and sorted(counts.tolist()) == [2, 2, 3, 3]


def test_targets_too_many_for_a_class():
    with pytest.raises(ds.DataError, match="class 1 has 2 test images"):
        select_targets(np.array([0, 0, 0, 1, 1]), 6, 2, seed=0)


def test_npz_written_by_rules_loads(tmp_path, mnist):
    from iriflow.io import save_npz

    save_npz(tmp_path / "t.npz", **target_arrays(mnist, 10, 0))
    assert load_npz(tmp_path / "t.npz")["images"].shape == (10, 1, 28, 28)
