"""Padded sequences: length masks and the teacher-forcing pair.

Sequences in the prepared data carry neither BOS nor EOS. The models never see raw targets:
the decoder reads ``BOS y_1 … y_n`` and is trained to predict ``y_1 … y_n EOS`` (teacher forcing,
Cho et al. 2014, arXiv 1406.1078 Sec. 2.1: EOS lets the model define a distribution over lengths).
Source sentences are encoded as they are, without markers.
"""

import torch

from models.special_tokens import BOS, EOS, PAD


def length_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True on real tokens."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(1)  # (B, T)


def add_bos_eos(y: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing pair from padded targets.

    y: (B, T) padded with PAD, lengths: (B,). Returns
    ``inputs`` (B, T+1) = BOS y (PAD after), ``targets`` (B, T+1) = y EOS (PAD after), and
    their lengths (B,) = lengths + 1. The loss ignores PAD positions of ``targets``.
    """
    B = y.size(0)
    pad_col = y.new_full((B, 1), PAD)
    inputs = torch.cat([y.new_full((B, 1), BOS), y], dim=1)  # (B, T+1)
    targets = torch.cat([y, pad_col], dim=1)  # (B, T+1)
    targets = targets.scatter(1, lengths.unsqueeze(1), EOS)  # EOS right after the last real token
    return inputs, targets, lengths + 1


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sentence's real tokens in reverse order, padding left where it was.

    x (B, T) (or (B, T, …)), lengths (B,) -> the same shape; position t < n takes x[n-1-t].
    """
    T = x.size(1)
    positions = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, T)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))
