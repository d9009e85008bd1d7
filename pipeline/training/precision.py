"""``precision: auto``: bf16 mixed precision where the hardware computes bf16 natively, fp32 elsewhere.

- CUDA: bf16-mixed when the GPU computes bf16 natively (Ampere and later; emulation does not count).
- CPU: bf16-mixed when it has bf16 dot-product instructions (x86 AVX-512 BF16 or AMX): there a bf16
  matmul runs ~3–4× faster than fp32 (benchmarks/throughput.py measures both peaks). Without them
  torch emulates bf16 and it is slower than fp32, so auto keeps fp32.
- anything else (MPS, …): fp32.
Training keeps fp32 master weights and optimizer state either way (Lightning's ``bf16-mixed``); the
loss is computed in fp32 (models.loss). An explicit ``"32"`` / ``"bf16-mixed"`` / ``"16-mixed"`` is
used as given.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

AUTO = "auto"


class Precision(NamedTuple):
    value: str  # what Lightning's Trainer takes: "32", "bf16-mixed" or "16-mixed"
    reason: str  # why, for the log

    def autocast(self, device_type: str):
        """The autocast context this precision means for inference (evaluate, decoding benchmarks)."""
        if self.value == "32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=torch.bfloat16 if self.value == "bf16-mixed" else torch.float16)


def cpu_has_bf16() -> bool:
    """True when this CPU has native bf16 instructions (AVX-512 BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def device_type(accelerator: str) -> str:
    """The device Lightning's ``accelerator`` setting ends up on: cuda, mps or cpu."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return "mps"
    return "cpu"


def resolve(setting: str, device: str) -> Precision:
    """``setting`` from params (auto or an explicit precision) on a ``device`` type -> what to use."""
    if setting != AUTO:
        return Precision(setting, "set in params")
    if device == "cuda":
        name = torch.cuda.get_device_name()
        # including_emulation=False: torch's default counts GPUs that only emulate bf16 (pre-Ampere),
        # where bf16-mixed runs slower than fp32.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision("bf16-mixed", f"auto: {name} computes bf16")
        return Precision("32", f"auto: {name} has no bf16 support")
    if device == "cpu":
        if cpu_has_bf16():
            return Precision("bf16-mixed", "auto: this CPU has bf16 instructions (AVX-512 BF16/AMX)")
        return Precision("32", "auto: this CPU has no bf16 instructions, bf16 would be emulated")
    return Precision("32", f"auto: fp32 on {device}")
