"""One time step of a single torch layer (GRU, LSTM, Elman RNN) forward with what its backward needs,
and that backward by hand: the per-step half of ``models.decoder_pass``.

Same gate order and the same operations as ``models.cells.cell_update`` (so the forward numbers are
identical), from the two projections input_gates = W_ih x + b_ih and hidden_gates = W_hh h + b_hh
(B, G). ``backward`` returns the gradients of both projections and of the previous state: the
weight gradients are not formed here but once over all steps by the caller (dW = dGᵀ X).

    gru  (Cho et al. 2014, arXiv 1406.1078 Sec. 2.3): r, z = σ(i_rz + h_rz); n = tanh(i_n + r ⊙ h_n);
         h' = (1 - z) ⊙ n + z ⊙ h
    lstm (Hochreiter & Schmidhuber 1997): c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g); h' = σ(o) ⊙ tanh(c')
    rnn  (Elman 1990): h' = tanh(i + h)
"""

import torch

aten = torch.ops.aten

Saved = tuple[torch.Tensor, ...]


def forward(cell: str, input_gates: torch.Tensor, hidden_gates: torch.Tensor, h: torch.Tensor,
            c: torch.Tensor | None, out: torch.Tensor) -> tuple[torch.Tensor | None, Saved]:
    """Writes h' (B, H) into ``out``; returns the LSTM's c' (else None) and the step's activations."""
    if cell == "gru":
        H = h.size(-1)
        reset_update = torch.sigmoid(input_gates[:, : 2 * H] + hidden_gates[:, : 2 * H])  # (B, 2H)
        reset, update = reset_update.chunk(2, dim=-1)
        hidden_new = hidden_gates[:, 2 * H:]  # W_hn h + b_hn (B, H): r multiplies it
        candidate = torch.tanh(input_gates[:, 2 * H:] + reset * hidden_new)
        torch.lerp(candidate, h, update, out=out)  # n + z (h - n)
        return None, (reset_update, candidate, hidden_new)
    if cell == "lstm":
        i, f, g, o = (input_gates + hidden_gates).chunk(4, dim=-1)
        si, sf, tg, so = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = sf * c + si * tg
        tc = torch.tanh(c_new)
        torch.mul(so, tc, out=out)
        return c_new, (si, sf, tg, so, tc, c)
    if cell == "rnn":
        torch.tanh(input_gates + hidden_gates, out=out)
        return None, (out,)
    raise ValueError(f"cell_steps: no gate form for cell {cell!r}")


def backward(cell: str, saved: Saved, h: torch.Tensor, grad_h: torch.Tensor, grad_c: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """d loss / d h' (B, H) (and d c' for LSTM) -> d input_gates (B, G), d hidden_gates (B, G),
    the direct part of d h (B, H) (GRU's z ⊙ h; None for the others: h enters only through W_hh h),
    d c (LSTM, else None)."""
    if cell == "gru":
        reset_update, candidate, hidden_new = saved
        reset, update = reset_update.chunk(2, dim=-1)
        grad_candidate = aten.tanh_backward(grad_h - grad_h * update, candidate)  # d(i_n + r h_n)
        grad_update = grad_h * (h - candidate)
        grad_reset = grad_candidate * hidden_new
        grad_rz = aten.sigmoid_backward(torch.cat([grad_reset, grad_update], dim=-1), reset_update)
        return (torch.cat([grad_rz, grad_candidate], dim=-1),
                torch.cat([grad_rz, grad_candidate * reset], dim=-1), grad_h * update, None)
    if cell == "lstm":
        si, sf, tg, so, tc, c = saved
        grad_c = aten.tanh_backward(grad_h * so, tc) if grad_c is None else grad_c + aten.tanh_backward(grad_h * so, tc)
        grad_gates = torch.cat([aten.sigmoid_backward(grad_c * tg, si), aten.sigmoid_backward(grad_c * c, sf),
                                aten.tanh_backward(grad_c * si, tg), aten.sigmoid_backward(grad_h * tc, so)], dim=-1)
        return grad_gates, grad_gates, None, grad_c * sf
    if cell == "rnn":
        grad_gates = aten.tanh_backward(grad_h, saved[0])
        return grad_gates, grad_gates, None, None
    raise ValueError(f"cell_steps: no gate form for cell {cell!r}")
