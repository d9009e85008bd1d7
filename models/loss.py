"""Training objective shared by every family: mean negative log-likelihood per real target token.

The loss is computed in row chunks of the (N, V) logits, in fp32 whatever the logits' dtype:
``F.cross_entropy`` on bf16 logits first writes an fp32 copy of all N × V of them, then their
log-softmax, then a gradient of the same size — several passes over tens of megabytes per batch
(a 2,000-token batch at a 10k vocabulary is 20M logits), which on a CPU cost more than the
output layer's matmul itself. A chunk of rows stays in cache from the max to the gradient, and
only the logits' own gradient, in their own dtype, is written out. Same numbers as
``F.cross_entropy`` (tests/models/test_loss.py).

Training goes one step further (``projected_nll``): the vocabulary projection and the loss in one
Function, so the (N, V) logits are never formed whole. Each chunk's logits are made, turned into
their loss and gradient (softmax − one-hot, computed in forward: it is all backward needs) and
dropped; backward is then two matmuls over the saved gradient. This removes a fresh N × V
allocation per step (page faults on a CPU), an fp32 copy of it, and every elementwise pass of backward.
"""

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

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


class _ProjectedCrossEntropy(torch.autograd.Function):
    """Per-row cross-entropy of the logits x Wᵀ + b against targets, chunk by chunk: features x (N, M),
    W (V, M), b (V,), targets (N,) -> losses (N,) fp32. Matmuls in the inputs' dtype; the softmax in fp32.

    loss_n = -(1 - ε) log p_{n,t_n} - ε mean_v log p_{n,v};  G_n = d loss_n / d logits_n = p_n - (1 - ε) onehot(t_n) - ε / V
    Backward, with g the upstream gradient (N,): d x = g ⊙ (G W) and [d W | d b] = Gᵀ [g ⊙ x | g]:
    the (N, V) G is read once by each matmul and never rescaled.
    """

    @staticmethod
    def forward(ctx, features, weight, bias, targets, smoothing: float, keep_gradient: bool) -> torch.Tensor:
        N, V = features.size(0), weight.size(0)
        losses = torch.empty(N, dtype=torch.float32, device=features.device)
        chunk = chunk_rows(features.device.type, V)
        gradient = features.new_empty(N, V) if keep_gradient else None  # G, in the logits' dtype
        logits = features.new_empty(min(chunk, N), V)  # one chunk's, reused
        for start in range(0, N, chunk):
            rows, n = slice(start, start + chunk), min(chunk, N - start)
            torch.addmm(bias, features[rows], weight.t(), out=logits[:n])
            log_p = torch.log_softmax(logits[:n], dim=-1, dtype=torch.float32)  # (n, V), one fused kernel
            target = targets[rows].unsqueeze(1)  # (n, 1)
            log_p_target = log_p.gather(1, target)  # (n, 1)
            losses[rows] = log_p_target.squeeze(1) * -(1 - smoothing)
            if smoothing:
                losses[rows] -= smoothing * log_p.mean(dim=-1)
            if keep_gradient:  # in fp32 while the chunk is in cache (p_t - 1 after rounding p_t to bf16 would lose digits)
                p = log_p.exp_()
                p.scatter_add_(1, target, p.new_full(target.shape, -(1 - smoothing)))
                if smoothing:
                    p.sub_(smoothing / V)
                gradient[rows] = p  # the one write in G's dtype
        ctx.save_for_backward(features, weight, gradient)
        ctx.weight_needs_gradient = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses: torch.Tensor):
        features, weight, gradient = ctx.saved_tensors
        # g = scale · m, with m exactly 0 or 1 for a masked mean: the matmuls do not see 1/count rounded to bf16.
        scale = grad_losses.abs().amax().clamp(min=torch.finfo(torch.float32).tiny)
        m = (grad_losses / scale).unsqueeze(1).to(features.dtype)  # (N, 1)
        grad_features = (gradient @ weight).mul_(m).mul_(scale) if ctx.needs_input_grad[0] else None  # (N, M)
        if not ctx.weight_needs_gradient:
            return grad_features, None, None, None, None, None
        grad_weight_bias = (gradient.t() @ torch.cat([features * m, m], dim=1)).mul_(scale)  # (V, M + 1)
        return grad_features, grad_weight_bias[:, :-1], grad_weight_bias[:, -1], None, None, None


def projected_nll(features: torch.Tensor, projection: nn.Linear, targets: torch.Tensor, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """``masked_nll(projection(features), targets, …)`` without forming the logits: features (B, T, M),
    projection M -> V, targets (B, T). Under autocast the matmuls run in its dtype, as F.linear's would."""
    device = features.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else projection.weight.dtype
    # G (N × V) only when a backward can follow (needs_input_grad follows requires_grad, not grad mode).
    keep_gradient = torch.is_grad_enabled() and any(t.requires_grad for t in (features, *projection.parameters()))
    with torch.autocast(device, enabled=False):
        losses = _ProjectedCrossEntropy.apply(features.flatten(0, -2).to(dtype), projection.weight.to(dtype),
                                              projection.bias.to(dtype), targets.flatten(), float(label_smoothing),
                                              keep_gradient)
    return _reduce(losses, targets.flatten(), reduction)


def _reduce(losses: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-row losses (N,) -> their sum or mean over the rows whose target is not PAD."""
    real = targets != PAD
    total = torch.where(real, losses, 0.0).sum()
    return total if reduction == "sum" else total / real.sum().clamp(min=1)


def masked_nll(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
               label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) with PAD on padding -> NLL over non-PAD positions, fp32.

    ``reduction="mean"`` averages over real tokens (EOS included), ``"sum"`` adds them up (sum over
    a dev set / token count gives the corpus mean). ``label_smoothing`` (Szegedy et al. 2016) is
    for training only: perplexity is defined on the plain NLL.
    """
    targets = targets.flatten()
    losses = _ChunkedCrossEntropy.apply(logits.flatten(0, 1), targets, float(label_smoothing))  # (N,)
    return _reduce(losses, targets, reduction)


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """exp of the mean per-token NLL (natural log), e.g. from ``masked_nll`` over a corpus."""
    return math.exp(float(mean_nll))
