"""The IRI set (iriflow.iriset): the one type that writes and reads IRI set
files, and the one place set ids are formatted and parsed."""

import numpy as np
import pytest

from conftest import run_without_torch
from iriflow.iriset import IRISet, IRISetError, SetId, split_set_ids


def make_set(set_id="mnist5k/resnet18-ce-adv_l2-s0/penultimate/regfree/other-image", n=5, seed=0):
    rng = np.random.default_rng(seed)
    img = lambda: rng.random((n, 1, 6, 6)).astype(np.float32)
    return IRISet(
        set_id,
        iris=img(),
        seeds=img(),
        targets=img(),
        target_index=rng.integers(0, 1000, n),
        target_label=np.arange(n) % 3,
        rel_dist=rng.random(n),
        loss=rng.random(n),
        converged=rng.random(n) < 0.5,
        settings={"metric": "ms_ssim", "loss_spec": {"kind": "regfree"}, "steps": 400, "step_size": 8.0},
    )


def test_set_ids_round_trip_with_and_without_an_epoch():
    text = "cifar10/vgg16bn-simclr-simclr_adv-s1/layer3/tv-l6/grey-noise"
    sid = SetId.parse(text)
    assert (sid.dataset, sid.model, sid.layer, sid.loss, sid.seed_type, sid.epoch) == (
        "cifar10",
        "vgg16bn-simclr-simclr_adv-s1",
        "layer3",
        "tv-l6",
        "grey-noise",
        None,
    )
    assert str(sid) == text and sid.model_id == "cifar10/vgg16bn-simclr-simclr_adv-s1"
    snap = sid.with_epoch(50)
    assert str(snap) == text + "/epoch0050" and SetId.parse(str(snap)) == snap and snap.epoch == 50
    cols = split_set_ids([text, str(snap)])
    assert cols["loss"] == ["tv-l6", "tv-l6"] and cols["epoch"] == [-1, 50]


@pytest.mark.parametrize(
    "bad", ["a/b/c/d", "a/b/c/d/e/f", "a/b/c/d/e/epoch12", "a/b/c d/e/f", "a//c/d/e", "a/b/c/d/e/epochs0001"]
)
def test_malformed_set_ids_are_refused(bad):
    with pytest.raises(IRISetError, match="set id"):
        SetId.parse(bad)


def test_save_and_load_round_trip_exactly(tmp_path):
    s = make_set()
    s.save(tmp_path / "iris.npz")
    back = IRISet.load(tmp_path / "iris.npz")
    assert back.id == s.id and back.settings == s.settings and back.metric == "ms_ssim"
    for name in ("iris", "seeds", "targets", "target_index", "target_label", "rel_dist", "loss", "converged"):
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))
        assert getattr(back, name).dtype == getattr(s, name).dtype
    assert set(back.images()) == {"iri", "target", "seed"}
    # equal sets give equal bytes (no timestamps in the archive)
    s.save(tmp_path / "again.npz")
    assert (tmp_path / "iris.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()


def test_inconsistent_arrays_and_foreign_files_are_refused(tmp_path):
    s = make_set()
    with pytest.raises(IRISetError, match="converged must have shape"):
        IRISet(s.id, s.iris, s.seeds, s.targets, s.target_index, s.target_label, s.rel_dist, s.loss, s.converged[:3])
    with pytest.raises(IRISetError, match="share one"):
        IRISet(s.id, s.iris, s.seeds[:2], s.targets, s.target_index, s.target_label, s.rel_dist, s.loss, s.converged)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(IRISetError, match="not an IRI set file"):
        IRISet.load(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(IRISetError, match="broken.npz"):
        IRISet.load(tmp_path / "broken.npz")


def test_reading_a_set_needs_no_torch(tmp_path):
    make_set().save(tmp_path / "iris.npz")
    code = f"from iriflow.iriset import IRISet\ns = IRISet.load({str(tmp_path / 'iris.npz')!r})\nprint(len(s), s.id)\n"
    assert run_without_torch(code).split() == ["5", "mnist5k/resnet18-ce-adv_l2-s0/penultimate/regfree/other-image"]
