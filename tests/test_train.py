import math

import pytest
import torch
import torch.nn as nn

from iriflow.archs import build_model
from iriflow.augment import build_augmentation
from iriflow.train import (
    LARS,
    OBJECTIVES,
    Trainer,
    build_objective,
    fit_linear_probe,
    lr_factor,
    training_fingerprint,
)

AUGS = {
    "none": {"kind": "none"},
    "standard": {"kind": "standard", "crop_pad": 2, "flip": False, "jitter": 0.1, "rotation": 2.0},
    "simclr": {"kind": "simclr_views", "color": False, "crop_scale": [0.5, 1.0], "flip": False},
    "adv": {
        "kind": "adversarial",
        "base": "standard",
        "attack": {"norm": "l2", "eps": 1.0, "steps": 2, "step_size": 0.6},
    },
    "simclr_adv": {
        "kind": "adversarial",
        "base": "simclr",
        "attack": {"norm": "l2", "eps": 1.0, "steps": 1, "step_size": 1.0},
    },
}
RECIPE = {
    "epochs": 3,
    "batch_size": 16,
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
    "schedule": {"name": "cosine", "warmup_epochs": 1},
    "snapshot_every": 1,
}


def toy_data(n=64, seed=0):
    """Two classes of 16x16 grey images: a bright left or right half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.2 * torch.rand(n, 1, 16, 16, generator=g)
    x[y == 0, :, :, :8] += 0.6
    x[y == 1, :, :, 8:] += 0.6
    return x.clamp(0, 1), y


def make_trainer(tmp_path, objective=("ce", {}), aug="adv", seed=0, tag="a", recipe=RECIPE):
    torch.manual_seed(seed)
    model = build_model("resnet18", 2, 1, [0.3], [0.3], 0.0625)
    obj = build_objective({"kind": objective[0], **objective[1]}, model.head.in_features)
    return Trainer(
        model,
        obj,
        build_augmentation(aug, AUGS),
        recipe,
        seed,
        torch.device("cpu"),
        checkpoint=tmp_path / tag / "last.pt",
        snapshot_dir=tmp_path / tag / "snaps",
    )


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_registry_has_every_objective():
    assert set(OBJECTIVES) == {"ce", "simclr", "trades", "mart"}


@pytest.mark.parametrize(
    "objective, aug",
    [(("ce", {}), "adv"), (("simclr", {"proj_dim": 8}), "simclr_adv"), (("trades", {"beta": 6.0}), "adv")],
)
def test_kill_and_resume_equals_uninterrupted(tmp_path, objective, aug):
    x, y = toy_data()
    full = make_trainer(tmp_path, objective, aug, tag="full")
    full.run(x, y)
    killed = make_trainer(tmp_path, objective, aug, tag="resumed")
    killed.run(x, y, stop_after=2)  # the job dies after epoch 2 ...
    assert killed.epoch == 2
    resumed = make_trainer(tmp_path, objective, aug, tag="resumed")  # ... and is started again
    result = resumed.run(x, y)
    assert result.resumed_from == 2 and resumed.epoch == 3
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert sorted(p.name for p in (tmp_path / "full" / "snaps").iterdir()) == [
        "epoch0001.pt",
        "epoch0002.pt",
        "epoch0003.pt",
    ]


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    x, y = toy_data()
    old = make_trainer(tmp_path, aug="none", tag="c", recipe={**RECIPE, "epochs": 2})
    old.fingerprint = "epochs=2"
    old.run(x, y)
    new = make_trainer(tmp_path, aug="none", tag="c", recipe={**RECIPE, "epochs": 1})
    new.fingerprint = "epochs=1"
    assert new.run(x, y, stop_after=0).resumed_from == 0 and new.epoch == 0


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    x, y = toy_data()
    runs = []
    for tag, seed in (("s0", 0), ("s0b", 0), ("s1", 1)):
        t = make_trainer(tmp_path, aug="standard", seed=seed, tag=tag, recipe={**RECIPE, "epochs": 1})
        t.run(x, y)
        runs.append(weights(t))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_supervised_training_learns_the_toy_task(tmp_path):
    x, y = toy_data(128)
    t = make_trainer(tmp_path, aug="none", recipe={**RECIPE, "epochs": 4})
    t.run(x, y)
    t.model.eval()
    with torch.no_grad():
        acc = (t.model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9
    assert t.history[-1]["loss"] < t.history[0]["loss"]


def test_trades_needs_an_attack(tmp_path):
    x, y = toy_data()
    t = make_trainer(tmp_path, ("mart", {"beta": 1.0}), aug="standard")
    with pytest.raises(ValueError, match="needs an adversarial augmentation"):
        t.run(x, y)


def test_lr_schedule_values():
    cos = {"name": "cosine", "warmup_epochs": 2}
    assert lr_factor(cos, 1.0, 10) == pytest.approx(0.5)
    assert lr_factor(cos, 2.0, 10) == pytest.approx(1.0)
    assert lr_factor(cos, 6.0, 10) == pytest.approx(0.5)
    assert lr_factor(cos, 10.0, 10) == pytest.approx(0.0, abs=1e-12)
    step = {"name": "step", "step_epochs": 50, "gamma": 0.1, "warmup_epochs": 0}
    assert lr_factor(step, 49.9, 150) == 1.0
    assert lr_factor(step, 50.0, 150) == pytest.approx(0.1)
    assert lr_factor(step, 120.0, 150) == pytest.approx(0.01)


def test_lars_scales_by_trust_ratio():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # |w| = 5
    w.grad = torch.tensor([0.0, 2.0])  # |g| = 2
    opt = LARS([{"params": [w], "lars": True, "weight_decay": 0.0}], lr=1.0, momentum=0.0, eta=0.1)
    opt.step()
    # step = lr * eta * |w|/|g| * g = 0.25 * g
    assert torch.allclose(w.detach(), torch.tensor([3.0, 3.5]))


def test_linear_probe_fits_separable_features():
    torch.manual_seed(0)
    model = build_model("resnet18", 2, 1, [0.3], [0.3], 0.0625)
    x, y = toy_data(128)
    acc = fit_linear_probe(model, x, y, 2, {"epochs": 30, "lr": 0.1, "batch_size": 32}, 0, torch.device("cpu"))
    with torch.no_grad():
        direct = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(direct)  # the folded standardisation gives the same logits
    assert acc > 0.9
    assert math.isfinite(model.head.weight.sum().item())


def test_training_reads_the_device_once_per_epoch(tmp_path, monkeypatch):
    """No .item() per step: the losses and metrics of an epoch are read in one go."""
    x, y = toy_data()
    reads = {"item": 0, "tolist": 0}
    for name in reads:
        original = getattr(torch.Tensor, name)

        def counted(t, *a, _name=name, _original=original, **k):
            reads[_name] += 1
            return _original(t, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer = make_trainer(tmp_path, aug="adv", recipe={**RECIPE, "epochs": 2, "snapshot_every": 0})
    trainer.run(x, y)
    assert reads == {"item": 0, "tolist": 2}  # 4 steps per epoch, 2 epochs
    assert [sorted(r) for r in trainer.history] == [["acc", "epoch", "loss", "lr", "seconds"]] * 2
    assert all(0 <= r["acc"] <= 1 and math.isfinite(r["loss"]) for r in trainer.history)


def test_a_non_finite_loss_stops_training_at_the_end_of_its_epoch_naming_the_step(tmp_path):
    x, y = toy_data()
    trainer = make_trainer(tmp_path, aug="none", recipe={**RECIPE, "epochs": 2, "snapshot_every": 0})
    real_loss = trainer.objective.loss
    calls = []

    def loss(*a):
        value, metrics = real_loss(*a)
        calls.append(1)
        return (value * float("nan") if len(calls) == 7 else value), metrics

    trainer.objective.loss = loss
    with pytest.raises(FloatingPointError, match="epoch 2, step 2"):
        trainer.run(x, y)
    assert trainer.epoch == 1 and torch.load(trainer.checkpoint, weights_only=True)["epoch"] == 1


def test_the_training_fingerprint_leaves_out_only_the_simclr_probe():
    import copy
    import json

    import yaml

    from conftest import ROOT, SCHEMA
    from iriflow.config import ModelSpec, model_settings, validate_config

    cfg = validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()), SCHEMA)
    simclr = model_settings(cfg, ModelSpec.parse("mnist5k/resnet18-simclr-simclr-s0"))
    refit = copy.deepcopy(simclr)
    refit["objective"]["probe"]["epochs"] += 5
    assert training_fingerprint(refit) == training_fingerprint(simclr)  # resumed: only the probe is fit again
    for key, value in (("temperature", 0.1), ("proj_dim", 32)):
        changed = copy.deepcopy(simclr)
        changed["objective"][key] = value
        assert training_fingerprint(changed) != training_fingerprint(simclr), key
    # a supervised model's fingerprint is all of its settings, as before the probe was left out
    ce = model_settings(cfg, ModelSpec.parse("mnist5k/resnet18-ce-standard-s0"))
    assert training_fingerprint(ce) == json.dumps(ce, sort_keys=True)
