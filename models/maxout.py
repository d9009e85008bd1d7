"""Deep output layer with a maxout hidden layer (Goodfellow et al. 2013), as used by both papers.

Bahdanau et al. 2014 (arXiv 1409.0473) App. A.2.2:
    t̃_i = U_o s_{i-1} + V_o E y_{i-1} + C_o c_i        (2M)
    t_i = [max(t̃_{i,2j-1}, t̃_{i,2j})]_{j=1..M}         (M)
    p(y_i | …) ∝ exp(y_iᵀ W_o t_i)
Cho et al. 2014 (arXiv 1406.1078) App. A.1.2 has the same form with (h'_t, y_{t-1}, c).
"""

import torch
from torch import nn


class MaxoutOutput(nn.Module):
    """(state (…, S), embedding (…, E), context (…, C)) -> logits (…, V)."""

    def __init__(self, state_size: int, emb_size: int, context_size: int, maxout_size: int,
                 vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.maxout_size = maxout_size
        # One matrix over the concatenation equals U_o s + V_o E y + C_o c (with one bias).
        self.pre = nn.Linear(state_size + emb_size + context_size, 2 * maxout_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(maxout_size, vocab_size)  # W_o (plus a bias)

    def forward(self, state: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(state, emb, context))  # (…, V)

    def features(self, state: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """What W_o projects: t_i after dropout (…, M). Training takes the loss of ``self.out`` applied to
        it in one Function (models.loss.projected_nll), without forming the logits."""
        t = self.pre(torch.cat([state, emb, context], dim=-1))  # (…, 2M)
        t = t.unflatten(-1, (self.maxout_size, 2)).amax(-1)  # (…, M): max over adjacent pairs
        return self.dropout(t)
