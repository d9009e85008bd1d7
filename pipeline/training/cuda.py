"""What only a CUDA device gets: TF32 matmuls, deterministic kernels, pinned batches. On a CPU nothing
changes (the CPU path is deterministic already, and these settings mean nothing there).

- TF32 (``torch.set_float32_matmul_precision("high")``): the fp32 matmuls (the decoder recurrence,
  models.decoder_pass, runs in fp32 under mixed precision) use the tensor cores, 10-bit mantissa
  products with fp32 accumulation. Not set by default in torch.
- Deterministic algorithms: CUDA's embedding and ``index_add``/``index_put`` backward accumulate with
  atomics, so two runs differ in the last bits unless asked; Lightning's ``deterministic="warn"``
  turns them deterministic (and sets CUBLAS_WORKSPACE_CONFIG) and only warns where an op has no
  deterministic kernel. This is what keeps bit-exact resume and reruns on a GPU.
- Pinned host memory for batches, so the copy to the device overlaps compute (``non_blocking``).
"""
from __future__ import annotations

from typing import Any

import torch


def apply_cuda_settings(device: str) -> dict[str, Any]:
    """Process-wide CUDA settings when ``device`` (a precision.device_type) is cuda; returns the
    Trainer arguments that go with them ({} on other devices)."""
    if device != "cuda":
        return {}
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return {"deterministic": "warn"}


def pin_memory(device: str) -> bool:
    """Pinned batches on CUDA only (pinning costs host time and buys nothing on a CPU)."""
    return device == "cuda"
