"""Training objective shared by every family: mean negative log-likelihood per real target token."""

import math

import torch
import torch.nn.functional as F

from models.special_tokens import PAD


def masked_nll(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
               label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) with PAD on padding -> NLL over non-PAD positions.

    ``reduction="mean"`` averages over real tokens (EOS included), ``"sum"`` adds them up (sum over
    a dev set / token count gives the corpus mean). ``label_smoothing`` (Szegedy et al. 2016) is
    for training only: perplexity is defined on the plain NLL.
    """
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, reduction=reduction,
                           label_smoothing=label_smoothing)


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """exp of the mean per-token NLL (natural log), e.g. from ``masked_nll`` over a corpus."""
    return math.exp(float(mean_nll))
