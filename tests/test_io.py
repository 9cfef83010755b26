import json

import numpy as np
import pytest

from iriflow import io


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    io.write_bytes_atomic(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_save_npz_is_byte_identical_and_roundtrips(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "a": rng.integers(0, 255, (5, 1, 4, 4), dtype=np.uint8),
        "b": np.arange(5, dtype=np.int64),
        "names": np.array(["x", "yz"]),
    }
    io.save_npz(tmp_path / "1.npz", **arrays)
    io.save_npz(tmp_path / "2.npz", **arrays)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    back = io.load_npz(tmp_path / "1.npz")
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)


def test_provenance_records_config_versions_and_time(tmp_path):
    io.write_provenance(tmp_path / "p.json", {"n": 3}, device="cpu", wall_time_s=1.23456, stage="x")
    rec = json.loads((tmp_path / "p.json").read_text())
    assert rec["config"] == {"n": 3}
    assert rec["wall_time_s"] == 1.235
    assert rec["device"] == "cpu" and rec["stage"] == "x"
    assert rec["packages"]["numpy"] == np.__version__
    assert len(rec["code_version"].split("+")[0]) in (40, len("unknown"))
