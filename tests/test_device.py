import pytest
import torch

from iriflow.device import select_device


def test_auto_and_cpu_select_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    assert select_device("cpu").type == "cpu"


def test_cuda_requested_without_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        select_device("cuda")


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "FakeGPU")
    assert select_device("auto").type == "cuda"
    assert select_device("cpu").type == "cpu"


def test_unknown_choice_rejected():
    with pytest.raises(ValueError, match="auto"):
        select_device("tpu")
