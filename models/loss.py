"""Training objective shared by every family: mean negative log-likelihood per real target token.

The loss is computed in row chunks of the (N, V) logits, in fp32 whatever the logits' dtype:
``F.cross_entropy`` on bf16 logits first writes an fp32 copy of all N × V of them, then their
log-softmax, then a gradient of the same size — several passes over tens of megabytes per batch
(a 2,000-token batch at a 10k vocabulary is 20M logits), which on a CPU cost more than the
output layer's matmul itself. A chunk of rows stays in cache from the max to the gradient, and
only the logits' own gradient, in their own dtype, is written out. Same numbers as
``F.cross_entropy`` (tests/models/test_loss.py).
"""

import math

import torch

from models.special_tokens import PAD

CHUNK_ROWS = 128  # 128 × 10k fp32 logits = 5 MB: one chunk's passes stay in a core's cache
# On a GPU the chunks only cost launches (~400 per step at 4,080 rows × 30k words): one chunk of up to
# 2^27 logits (512 MB in fp32) does the batch in a few kernels.
CUDA_CHUNK_LOGITS = 2**27


def chunk_rows(device_type: str, vocab: int) -> int:
    """Rows of logits per chunk on a device type: cache-sized on a CPU, launch-sized elsewhere."""
    return CHUNK_ROWS if device_type == "cpu" else max(CUDA_CHUNK_LOGITS // vocab, CHUNK_ROWS)


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Per-row cross-entropy of logits (N, V) against targets (N,), with label smoothing ε:
    loss_n = lse_n - (1 - ε) x_{n,t_n} - ε mean_v x_{n,v};  d loss_n / d x_n = softmax(x_n) - (1 - ε) onehot(t_n) - ε / V.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        losses = torch.empty(logits.size(0), dtype=torch.float32, device=logits.device)  # (N,)
        lse = torch.empty_like(losses)  # log Σ_v exp x_{n,v}, kept for the backward pass
        chunk = ctx.chunk = chunk_rows(logits.device.type, logits.size(1))
        for start in range(0, logits.size(0), chunk):
            rows = slice(start, start + chunk)
            x = logits[rows].float()  # (n, V)
            lse[rows] = torch.logsumexp(x, dim=-1)
            target_logit = x.gather(1, targets[rows].unsqueeze(1)).squeeze(1)  # (n,)
            losses[rows] = lse[rows] - (1 - smoothing) * target_logit
            if smoothing:
                losses[rows] -= smoothing * x.mean(dim=-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.smoothing = smoothing
        return losses

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        smoothing, vocab = ctx.smoothing, logits.size(1)
        grad = torch.empty_like(logits)
        for start in range(0, logits.size(0), ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            g = grad_losses[rows].float().unsqueeze(1)  # (n, 1)
            chunk = torch.exp(logits[rows].float() - lse[rows].unsqueeze(1)).mul_(g)  # softmax · g
            chunk.scatter_add_(1, targets[rows].unsqueeze(1), -(1 - smoothing) * g)
            if smoothing:
                chunk.sub_(smoothing / vocab * g)
            grad[rows] = chunk
        return grad, None, None


def masked_nll(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
               label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) with PAD on padding -> NLL over non-PAD positions, fp32.

    ``reduction="mean"`` averages over real tokens (EOS included), ``"sum"`` adds them up (sum over
    a dev set / token count gives the corpus mean). ``label_smoothing`` (Szegedy et al. 2016) is
    for training only: perplexity is defined on the plain NLL.
    """
    targets = targets.flatten()
    real = targets != PAD
    losses = _ChunkedCrossEntropy.apply(logits.flatten(0, 1), targets, float(label_smoothing))  # (N,)
    total = torch.where(real, losses, 0.0).sum()
    return total if reduction == "sum" else total / real.sum().clamp(min=1)


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """exp of the mean per-token NLL (natural log), e.g. from ``masked_nll`` over a corpus."""
    return math.exp(float(mean_nll))
