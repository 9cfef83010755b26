import torch
import torchvision

from iriflow.archs import build_model
from iriflow.models import evaluate, frozen, load_external, load_model, save_model

SPEC = {
    "arch": "resnet18",
    "num_classes": 3,
    "in_channels": 1,
    "mean": [0.5],
    "std": [0.25],
    "width": 0.0625,
    "stem_stride": 2,
}


def test_save_and_load_model_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = build_model(**SPEC).eval()
    save_model(tmp_path / "model.pt", tmp_path / "model.json", net, {"id": "mnist5k/x", "epochs": 2})
    back = load_model(tmp_path / "model.pt")
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    # a plain state_dict: every value is a tensor
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_load_model_names_a_mismatched_checkpoint(tmp_path):
    net = build_model(**SPEC)
    save_model(tmp_path / "model.pt", tmp_path / "model.json", net, {})
    other = build_model(**{**SPEC, "width": 0.125})
    torch.save(other.state_dict(), tmp_path / "model.pt")
    try:
        load_model(tmp_path / "model.pt")
    except ValueError as e:
        assert "model.pt: does not fit architecture resnet18" in str(e)
    else:
        raise AssertionError("a mismatched checkpoint loaded")


def test_external_torchvision_checkpoint_maps_fc_to_head(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    torch.save(tv.state_dict(), tmp_path / "published.pt")
    spec = {"arch": "tv_resnet18", "num_classes": 3, "in_channels": 3, "mean": [0.0] * 3, "std": [1.0] * 3}
    net = load_external(tmp_path / "published.pt", spec)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), tv(x))


def test_evaluate_reports_clean_and_robust_accuracy():
    torch.manual_seed(0)
    # a linear 'model' on 2 pixels that is right on clean inputs near its margin
    net = build_model(**SPEC).eval()
    x = torch.rand(32, 1, 16, 16)
    with torch.no_grad():
        y = net(x).argmax(1)  # labels = the model's own predictions: clean accuracy 1
    attacks = {
        "l2": {"norm": "l2", "eps": 2.0, "steps": 5, "step_size": 0.5},
        "tiny": {"norm": "linf", "eps": 1e-6, "steps": 1, "step_size": 1e-6},
    }
    out = evaluate(net, x, y, attacks, batch_size=16, device=torch.device("cpu"))
    assert out["clean_acc"] == 1.0 and out["n_test"] == 32
    assert out["robust_acc_l2"] < 0.5  # an untrained net is not robust
    assert out["robust_acc_tiny"] == 1.0  # a negligible ball changes nothing


def test_evaluate_in_channels_last_matches_contiguous_up_to_rounding():
    torch.manual_seed(0)
    net = build_model(**SPEC).eval()
    x = torch.rand(32, 1, 16, 16)
    with torch.no_grad():
        y = net(x).argmax(1)
    y[::4] = (y[::4] + 1) % 3  # some clean errors too
    attacks = {"l2": {"norm": "l2", "eps": 0.5, "steps": 5, "step_size": 0.25}}
    dense = evaluate(net, x, y, attacks, batch_size=16, device=torch.device("cpu"))
    last = evaluate(net, x, y, attacks, batch_size=16, device=torch.device("cpu"), channels_last=True)
    conv = next(
        m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1
    )
    # evaluate works on a frozen copy (iriflow.models.frozen): the caller's model is as it was
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())
    assert last["clean_acc"] == dense["clean_acc"] == 0.75
    assert 0 < dense["robust_acc_l2"] < dense["clean_acc"]
    assert abs(last["robust_acc_l2"] - dense["robust_acc_l2"]) <= 1 / 32  # one flip at most, from rounding


def test_frozen_is_a_folded_gradient_free_copy_in_the_memory_format():
    torch.manual_seed(0)
    net = build_model(**SPEC)
    net.train()
    x = torch.rand(64, 1, 16, 16)
    net(x)  # one training-mode pass: BatchNorm statistics that are not the identity
    net.eval()
    with torch.no_grad():
        want = net(x)
    net.train()
    cold = frozen(net, channels_last=True)
    assert not cold.training and net.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in cold.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0
    assert not any(p.requires_grad for p in cold.parameters()) and all(p.requires_grad for p in net.parameters())
    convs = [m for m in cold.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    with torch.no_grad():
        got = cold(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
