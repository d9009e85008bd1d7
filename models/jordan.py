"""Jordan network (Jordan 1986, "Serial order: a parallel distributed processing approach").

An Elman network (Elman 1990) feeds back its previous *hidden* state; Jordan's network feeds back its
previous *output*. For every layer and direction we use

    h_t = tanh(W_xh x_t + W_yh y_{t-1} + b_h)        (hidden_size)
    y_t = W_hy h_t + b_y                               (output_size, linear)

with y_0 = 0 unless an initial output is given. The recurrent state is y_{t-1} alone; h_t is
recomputed from it at every step. Jordan's decaying "state units" (s_t = μ s_{t-1} + y_{t-1}) are
the special case μ = 0. The same weights are used at every step; layers are stacked like
``nn.RNN``: layer l reads the outputs of layer l-1 (both directions concatenated), with dropout
between layers. No library provides this cell, so it is a plain loop over time.
"""

import torch
from torch import nn


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, F) within its own length; padding stays in place."""
    t = torch.arange(x.size(1), device=x.device)  # (T,)
    index = lengths.unsqueeze(1) - 1 - t  # (B, T)
    index = torch.where(index >= 0, index, t)  # padding positions map to themselves
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class JordanLayer(nn.Module):
    """One direction of one layer: the two equations of the module docstring."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.xh = nn.Linear(input_size, hidden_size)  # W_xh, b_h
        self.yh = nn.Linear(output_size, hidden_size, bias=False)  # W_yh
        self.hy = nn.Linear(hidden_size, output_size)  # W_hy, b_y
        bound = hidden_size**-0.5  # nn.RNN's initialisation, for all three matrices
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I), mask (B, T) bool, y = y_0 (B, O) -> outputs (B, T, O), last real y (B, O)."""
        xh = self.xh(x)  # (B, T, H): the input term does not recur, so all steps at once
        outputs = []
        for t in range(x.size(1)):
            h = torch.tanh(xh[:, t] + self.yh(y))  # (B, H)
            y_t = self.hy(h)  # (B, O)
            real = mask[:, t, None]  # (B, 1)
            y = torch.where(real, y_t, y)  # past a sentence's end its state stays frozen
            outputs.append(y_t * real)  # zeros on padding, like pad_packed_sequence
        return torch.stack(outputs, dim=1), y


class JordanRNN(nn.Module):
    """Stacked, optionally bidirectional Jordan network with the state layout of ``nn.RNN``.

    forward(x (B, T, I), lengths (B,) or None, y0 (L*D, B, O) or None)
        -> outputs (B, T, D*O) (zero on padding), y_n (L*D, B, O) at each sequence's last token.
    Index l*D + d of the state is layer l, direction d (d = 1 runs right to left).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        self.output_size = output_size or hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        D, O = self.num_directions, self.output_size
        self.layers = nn.ModuleList(
            JordanLayer(input_size if layer == 0 else D * O, hidden_size, O)
            for layer in range(num_layers) for _ in range(D)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                y0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        D = self.num_directions
        if lengths is None:
            lengths = torch.full((B,), T, device=x.device, dtype=torch.long)
        lengths = lengths.to(x.device)
        mask = torch.arange(T, device=x.device) < lengths.unsqueeze(1)  # (B, T)
        if y0 is None:
            y0 = x.new_zeros(self.num_layers * D, B, self.output_size)
        finals = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self.dropout(x)  # between layers only, as in nn.RNN
            outputs = []
            for d in range(D):
                k = layer * D + d
                inp = x if d == 0 else reverse_padded(x, lengths)  # backward: read right to left
                out, y_n = self.layers[k](inp, mask, y0[k])  # (B, T, O), (B, O)
                outputs.append(out if d == 0 else reverse_padded(out, lengths))
                finals.append(y_n)
            x = torch.cat(outputs, dim=-1)  # (B, T, D*O)
        return x, torch.stack(finals)  # (B, T, D*O), (L*D, B, O)
