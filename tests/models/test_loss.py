"""The chunked cross-entropy gives F.cross_entropy's values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from models import loss as loss_module
from models.loss import masked_nll
from models.special_tokens import PAD


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_torch_cross_entropy(monkeypatch, smoothing, reduction):
    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 4)  # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 5, 11, generator=g)).requires_grad_()
    targets = torch.randint(1, 11, (3, 5), generator=g)
    targets[0, 3:] = PAD
    targets[2, 1:] = PAD
    ours = masked_nll(logits, targets, reduction, smoothing)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, reduction=reduction,
                             label_smoothing=smoothing)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)
    assert grad_ours[2, 1:].abs().max() == 0  # padding gets no gradient


def test_bf16_logits_get_a_bf16_gradient_and_an_fp32_loss():
    logits = torch.randn(6, 7, dtype=torch.bfloat16).view(2, 3, 7).requires_grad_()
    targets = torch.tensor([[1, 2, 3], [4, 5, PAD]])
    loss = masked_nll(logits, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    reference = F.cross_entropy(logits.detach().float().flatten(0, 1), targets.flatten(), ignore_index=PAD)
    assert torch.allclose(loss, reference, atol=1e-5)


def test_all_padding_is_zero_not_nan():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    assert masked_nll(logits, torch.full((1, 2), PAD)).item() == 0


def test_chunks_are_cache_sized_on_a_cpu_and_launch_sized_on_a_gpu():
    from models.loss import CHUNK_ROWS, chunk_rows

    assert chunk_rows("cpu", 30000) == CHUNK_ROWS
    assert chunk_rows("cuda", 30000) >= 4080  # a paper-size batch (80 × 51 rows) in one chunk
    assert chunk_rows("cuda", 10**9) == CHUNK_ROWS  # never fewer rows than on a CPU
