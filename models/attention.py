"""Additive attention (Bahdanau et al. 2014, arXiv 1409.0473, Sec. 3.1 and App. A.1.2).

    e_ij = vᵀ tanh(W s_{i-1} + U h_j)          alignment score of target step i with source word j
    α_ij = exp(e_ij) / Σ_k exp(e_ik)           over the sentence's real words only
    c_i  = Σ_j α_ij h_j                        context vector

U h_j does not depend on i, so it is computed once per sentence (``project_keys``). As in the
paper there are no biases inside the tanh.
"""

import torch
from torch import nn


class AdditiveAttention(nn.Module):
    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.W = nn.Linear(query_size, attention_size, bias=False)
        self.U = nn.Linear(key_size, attention_size, bias=False)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys h (B, T, K) -> U h (B, T, A), once per sentence."""
        return self.U(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query s_{i-1} (B, Q), keys h (B, T, K), U h (B, T, A), mask (B, T) True on real words
        -> context c_i (B, K), weights α_i (B, T) (exactly 0 where mask is False)."""
        return self.attend(self.W(query), keys, projected_keys, mask)

    def attend(self, projected_query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` with W s_{i-1} (B, A) already computed (RNNsearch shares that matmul with its cell)."""
        energy = self.v(torch.tanh(projected_query.unsqueeze(1) + projected_keys)).squeeze(-1)  # (B, T)
        energy = energy.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: padding gets no weight
        weights = torch.softmax(energy, dim=-1)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1).to(keys.dtype), keys).squeeze(1)  # (B, K)
        return context, weights
