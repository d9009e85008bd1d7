"""The teacher-forced decoder recurrence of RNNsearch and RNNenc as one autograd Function.

Autograd would record ~15 small ops per target step and, in backward, accumulate every weight's
gradient once per step (thousands of small matmuls and adds per batch: op overhead, not arithmetic,
on a CPU and in kernel launches on a GPU). Here, as cuDNN does for its own RNNs:

- forward loops over the steps keeping only what backward needs (states, cell activations,
  attention tanh and weights);
- backward loops once over the steps backwards propagating only the state gradient d s_{i-1};
- every weight gradient is then one large matmul over all B·T rows (dW = dGᵀ X), and so are the
  attention's d v, d U h_j and d h_j.

One step i (RNNsearch: Bahdanau et al. 2014, arXiv 1409.0473, Sec. 3.1 and App. A.2.2; without
attention, RNNenc: Cho et al. 2014, arXiv 1406.1078, Sec. 2.2, whose c is folded into word_gates):

    [q_i; hg_i] = [W; W_hh] s_{i-1} + [0; b_hh]                   (B, A), (B, G)
    e_ij = vᵀ tanh(q_i + U h_j),  α_i = softmax over real words    (B, T_x)
    c_i  = Σ_j α_ij h_j                                            (B, 2H)
    s_i  = cell(word_gates_i + W_c c_i, hg_i, s_{i-1})             word_gates_i = W_e E y_{i-1} + b_ih

Same numbers as the step-by-step path (tests/models/test_decoder_pass.py). Runs in fp32: callers
disable autocast around it (models.cells.full_precision); backward does so too.
"""

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from models import cell_steps


class DecoderPass(torch.autograd.Function):
    """(word_gates (B, T, G), s_0 (B, H), c_0 (B, H) LSTM or None, annotations h (B, T_x, 2H),
    keys U h (B, T_x, A), mask (B, T_x), W (A, H), W_hh (G, H), b_hh (G,), W_c (G, 2H), v (1, A))
    -> states s_0 … s_T (T+1, B, H), contexts c_1 … c_T (T, B, 2H), weights α (T, B, T_x).
    Without attention the last six are None and so are contexts and weights."""

    @staticmethod
    def forward(ctx, cell: str, word_gates, h0, c0, annotations, keys, mask, w_query, w_hh, b_hh, w_context, v):
        attention = annotations is not None
        T, (B, H) = word_gates.size(1), h0.shape
        weight = torch.cat([w_query, w_hh]) if attention else w_hh  # one matmul per step for both (A + G, H)
        bias = torch.cat([b_hh.new_zeros(w_query.size(0)), b_hh]) if attention else b_hh
        A = w_query.size(0) if attention else 0
        states = h0.new_empty(T + 1, B, H)  # s_0 … s_T
        states[0] = h0
        saved, contexts, alphas = [], [], []
        tanhs = keys.new_empty(T, *keys.shape) if attention else None  # tanh(q_i + U h_j) (T, B, T_x, A)
        c, blocked = c0, ~mask if attention else None
        for i, gates in enumerate(word_gates.unbind(1)):
            projected = torch.addmm(bias, states[i], weight.t())  # (B, A + G)
            if attention:
                torch.add(keys, projected[:, :A].unsqueeze(1), out=tanhs[i]).tanh_()  # no temporary
                energy = F.linear(tanhs[i], v).squeeze(-1).masked_fill_(blocked, float("-inf"))  # (B, T_x)
                alpha = torch.softmax(energy, dim=-1)
                context = torch.bmm(alpha.unsqueeze(1), annotations).squeeze(1)  # (B, 2H)
                gates = torch.addmm(gates, context, w_context.t())
                contexts.append(context)
                alphas.append(alpha)
            c, activations = cell_steps.forward(cell, gates, projected[:, A:], states[i], c, out=states[i + 1])
            saved.append(activations)
        contexts = torch.stack(contexts) if attention else None
        alphas = torch.stack(alphas) if attention else None
        ctx.cell, ctx.saved, ctx.A, ctx.lstm = cell, saved, A, c0 is not None
        ctx.save_for_backward(states, contexts, alphas, tanhs, annotations, weight, w_context, v)
        return states, contexts, alphas

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states, grad_contexts, grad_alphas):
        states, contexts, alphas, tanhs, annotations, weight, w_context, v = ctx.saved_tensors
        with torch.autocast(states.device.type, enabled=False):
            return (None,) + _backward(ctx.cell, ctx.saved, ctx.A, ctx.lstm, states, contexts, alphas, tanhs,
                                       annotations, weight, w_context, v, grad_states, grad_contexts, grad_alphas)


def _backward(cell, saved, A, lstm, states, contexts, alphas, tanhs, annotations, weight, w_context, v,
              grad_states, grad_contexts, grad_alphas):
    attention = annotations is not None
    T = len(saved)
    grad_projected = weight.new_empty(T, states.size(1), weight.size(0))  # d [q_i; hg_i] (T, B, A + G)
    grad_inputs = weight.new_empty(T, states.size(1), weight.size(0) - A)  # d input gates (T, B, G)
    if attention:
        grad_context_all = torch.empty_like(contexts)  # d c_i, all paths (T, B, 2H)
        grad_energy = alphas.new_empty(alphas.shape)  # d e_i (T, B, T_x)
        # Σ_i d e_ij (1 - tanh²): d U h_j and d q_i without v, which multiplies once at the end.
        grad_keys = torch.zeros_like(tanhs[0])  # (B, T_x, A)
        grad_u = torch.empty_like(tanhs[0])  # one step's, reused (no fresh pages per step)
    grad_h = grad_states[T].clone()  # d s_T (zeros unless a caller uses the last state)
    grad_c = None
    for i in reversed(range(T)):
        grad_in, grad_hidden, grad_direct, grad_c = cell_steps.backward(cell, saved[i], states[i], grad_h, grad_c)
        grad_inputs[i] = grad_in
        grad_projected[i, :, A:] = grad_hidden
        if attention:
            grad_context = torch.addmm(grad_contexts[i], grad_in, w_context, out=grad_context_all[i])
            grad_alpha = torch.bmm(annotations, grad_context.unsqueeze(2)).squeeze(2)  # (B, T_x)
            grad_alpha += grad_alphas[i]
            torch.ops.aten._softmax_backward_data(grad_alpha, alphas[i], -1, alphas.dtype, grad_input=grad_energy[i])
            torch.ops.aten.tanh_backward.grad_input(grad_energy[i].unsqueeze(2), tanhs[i], grad_input=grad_u)
            torch.sum(grad_u, dim=1, out=grad_projected[i, :, :A]).mul_(v)  # d q_i = v ⊙ Σ_j …
            grad_keys += grad_u
        grad_h = torch.addmm(grad_states[i], grad_projected[i], weight)  # d s_{i-1}: its own, through [q_i; hg_i]
        if grad_direct is not None:
            grad_h += grad_direct
    # Weight gradients: one matmul over all T·B rows each.
    rows = T * states.size(1)
    grad_weight = grad_projected.view(rows, -1).t() @ states[:T].reshape(rows, -1)  # (A + G, H)
    grad_b_hh = grad_projected[:, :, A:].sum((0, 1))
    grad_word_gates = grad_inputs.transpose(0, 1)  # (B, T, G)
    grad_c0 = grad_c if lstm else None
    if not attention:
        return grad_word_gates, grad_h, grad_c0, None, None, None, None, grad_weight, grad_b_hh, None, None
    grad_w_context = grad_inputs.view(rows, -1).t() @ contexts.view(rows, -1)  # (G, 2H)
    grad_v = (grad_energy.view(1, -1) @ tanhs.view(-1, tanhs.size(-1)))  # (1, A)
    grad_annotations = torch.bmm(alphas.permute(1, 2, 0), grad_context_all.transpose(0, 1))  # Σ_i α_ij d c_i (B, T_x, 2H)
    return (grad_word_gates, grad_h, grad_c0, grad_annotations, grad_keys.mul_(v), None, grad_weight[:A], grad_weight[A:], grad_b_hh, grad_w_context, grad_v)


def decoder_pass(cell: str, word_gates: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None,
                 w_hh: torch.Tensor, b_hh: torch.Tensor, attention: dict | None = None):
    """``DecoderPass.apply`` with keyword attention terms: attention = dict(annotations, keys, mask,
    w_query, w_context, v) or None (RNNenc)."""
    a = attention or {}
    inputs = [word_gates, h0, c0, a.get("annotations"), a.get("keys"), a.get("mask"), a.get("w_query"),
              w_hh, b_hh, a.get("w_context"), a.get("v")]
    inputs = [t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t
              for t in inputs]  # the recurrence in fp32 (float64 stays, for gradcheck)
    with torch.autocast(word_gates.device.type, enabled=False):
        return DecoderPass.apply(cell, *inputs)
