"""precision: auto picks bf16-mixed only where the hardware computes bf16, and says why."""
import pytest
import torch

from pipeline.training import precision


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16-mixed"), (False, "32")])
def test_auto_on_a_cpu_follows_its_bf16_instructions(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: has_bf16)
    chosen = precision.resolve("auto", "cpu")
    assert chosen.value == expected
    assert ("has bf16" in chosen.reason) == has_bf16 and chosen.reason.startswith("auto")


def test_cpu_detection_reads_torch_probes(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not precision.cpu_has_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert precision.cpu_has_bf16()


def test_auto_on_cuda_asks_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Old GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve("auto", "cuda").value == "32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve("auto", "cuda").value == "bf16-mixed"


def test_auto_on_cuda_does_not_count_emulated_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() is True on GPUs that only emulate bf16 (slower than fp32)."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Turing")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert precision.resolve("auto", "cuda").value == "32"


def test_explicit_setting_is_kept_and_other_devices_get_fp32():
    assert precision.resolve("32", "cpu") == ("32", "set in params")
    assert precision.resolve("auto", "mps").value == "32"
    assert precision.device_type("cpu") == "cpu"


def test_autocast_context_matches_the_precision():
    with precision.Precision("bf16-mixed", "").autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.Precision("32", "").autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
