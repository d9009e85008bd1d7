"""CUDA-only settings are applied on CUDA only: TF32, deterministic kernels, pinned batches."""
import pytest
import torch

from pipeline.config import load_params
from pipeline.training import cuda
from pipeline.training.build import build_task_and_data
from tests.pipeline.helpers import REPO
from tests.pipeline.training.tiny_corpus import write_tiny_corpus


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    return calls


def test_cuda_gets_tf32_and_deterministic_kernels(recorded):
    assert cuda.apply_cuda_settings("cuda") == {"deterministic": "warn"}
    assert recorded == ["high"]


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_other_devices_get_nothing(recorded, device):
    assert cuda.apply_cuda_settings(device) == {}
    assert recorded == []


@pytest.mark.parametrize("accelerator, pinned", [("gpu", True), ("cpu", False)])
def test_batches_are_pinned_for_cuda_only(tmp_path, accelerator, pinned):
    data = write_tiny_corpus(tmp_path / "tiny")
    params = load_params(REPO / "params.yaml")
    params = params.model_copy(update={"train": params.train.model_copy(update={"accelerator": accelerator})})
    _, datamodule = build_task_and_data("rnnsearch-gru", data, params)
    assert datamodule.pin_memory is pinned
    assert datamodule.val_dataloader().pin_memory is pinned
