"""models.decoder_pass (the teacher-forced decoder as one autograd Function) against the step-by-step
autograd path it replaced: same values, same gradients, for every cell the single-layer path serves."""
import pytest
import torch
import torch.nn.functional as F

from models.cells import full_precision
from models.decoder_pass import decoder_pass
from tests.models.test_architectures import batch
from tests.models.util import tiny_model

CELLS = ["gru", "lstm", "rnn"]


def _pass_and_grads(model, src, src_lengths, tgt_in, one_pass: bool, autocast: bool = False):
    """(s, c, α) of both decoder paths and every gradient, for a loss that reads all three."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        memory = model.encode(src, src_lengths)
        emb = model.tgt_embed(tgt_in)
        emb.retain_grad()
    with full_precision(emb):  # as RNNSearch.forward
        state = model.init_state(memory)
        if one_pass:
            outputs = model.teacher_forced_pass(emb, state, memory)
        else:
            outputs = model.teacher_forced_steps(emb, state, memory, gates=True)
    generator = torch.Generator().manual_seed(0)
    loss = sum((out.float() * torch.randn(out.shape, generator=generator)).sum() for out in outputs)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return outputs, {**grads, "emb": emb.grad}


@pytest.mark.parametrize("cell", CELLS)
def test_one_pass_equals_the_step_loop_in_values_and_gradients(cell):
    model = tiny_model(f"rnnsearch-{cell}", seed=1)
    src, src_lengths, tgt_in, _, _ = batch(seed=3, n=5)  # variable lengths, padding on both sides
    fast, fast_grads = _pass_and_grads(model, src, src_lengths, tgt_in, one_pass=True)
    slow, slow_grads = _pass_and_grads(model, src, src_lengths, tgt_in, one_pass=False)
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)  # same ops in the same order: identical forward numbers
    assert fast_grads.keys() == slow_grads.keys()
    used = [name for name, _ in model.named_parameters() if not name.startswith("output.")]  # all but the deep output
    assert sorted(fast_grads) == sorted(used + ["emb"])
    for name in slow_grads:
        assert torch.allclose(fast_grads[name], slow_grads[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_one_pass_under_bf16_autocast_stays_close(cell):
    model = tiny_model(f"rnnsearch-{cell}", seed=2)
    src, src_lengths, tgt_in, _, _ = batch(seed=4, n=4)
    fast, fast_grads = _pass_and_grads(model, src, src_lengths, tgt_in, one_pass=True, autocast=True)
    slow, slow_grads = _pass_and_grads(model, src, src_lengths, tgt_in, one_pass=False, autocast=True)
    assert all(out.dtype == torch.float32 for out in fast)  # the recurrence runs in fp32
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-5)
    for name in slow_grads:
        assert torch.allclose(fast_grads[name], slow_grads[name], rtol=1e-3, atol=1e-4), name


def test_the_model_takes_the_one_pass_for_a_single_torch_layer(monkeypatch):
    calls = []
    model = tiny_model("rnnsearch-gru")
    monkeypatch.setattr(type(model), "teacher_forced_pass",
                        lambda self, *a: calls.append(1) or type(self).teacher_forced_steps(self, *a))
    src, src_lengths, tgt_in, _, tgt_lengths = batch()
    model(src, src_lengths, tgt_in, tgt_lengths)
    assert calls == [1]
    deep = tiny_model("rnnsearch-gru", num_layers=2)
    monkeypatch.setattr(type(deep), "teacher_forced_pass", lambda *a: pytest.fail("two layers take the step loop"))
    deep(src, src_lengths, tgt_in, tgt_lengths)


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_hand_written_backward_passes_gradcheck(cell, attention):
    """Finite differences in float64 on the Function itself, every input that takes a gradient."""
    generator = torch.Generator().manual_seed(5)
    B, T, T_x, H, A, K = 2, 3, 4, 3, 2, 4
    G = {"gru": 3, "lstm": 4, "rnn": 1}[cell] * H

    def tensor(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    word_gates, h0, w_hh, b_hh = tensor(B, T, G), tensor(B, H), tensor(G, H), tensor(G)
    c0 = tensor(B, H) if cell == "lstm" else None
    mask = torch.tensor([[True] * T_x, [True, True, False, False]])
    terms = dict(annotations=tensor(B, T_x, K), keys=tensor(B, T_x, A), mask=mask, w_query=tensor(A, H),
                 w_context=tensor(G, K), v=tensor(1, A)) if attention else None
    differentiable = [t for t in (word_gates, h0, c0, w_hh, b_hh) if t is not None]
    if attention:
        differentiable += [terms[k] for k in ("annotations", "keys", "w_query", "w_context", "v")]

    def run(*_):
        states, contexts, alphas = decoder_pass(cell, word_gates, h0, c0, w_hh, b_hh, terms)
        return (states, contexts, alphas) if attention else states

    assert torch.autograd.gradcheck(run, differentiable)
    if attention:  # padding gets no weight and no gradient
        _, _, alphas = decoder_pass(cell, word_gates, h0, c0, w_hh, b_hh, terms)
        assert torch.all(alphas[:, 1, 2:] == 0)


def test_without_attention_equals_the_torch_module():
    """No attention: the plain recurrence, as nn.GRU computes it (outputs and gradients)."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 4, batch_first=True)
    x = torch.randn(3, 6, 5, requires_grad=True)
    expected, _ = gru(x)
    (expected * expected).sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in gru.parameters()]
    x.grad = None
    gru.zero_grad()
    word_gates = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
    states, _, _ = decoder_pass("gru", word_gates, x.new_zeros(3, 4), None, gru.weight_hh_l0, gru.bias_hh_l0)
    out = states[1:].transpose(0, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    (out * out).sum().backward()
    for a, b in zip([x.grad] + [p.grad for p in gru.parameters()], grads):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_rnnenc_one_pass_equals_the_module_call(cell, monkeypatch):
    """RNNenc's decoder: the one pass against nn.GRU/LSTM/RNN over [E y; c] (values and gradients)."""
    model = tiny_model(f"rnnenc-{cell}", seed=1)
    src, src_lengths, tgt_in, tgt_out, tgt_lengths = batch(seed=3, n=5)

    def logits_and_grads():
        model.zero_grad()
        logits, _ = model(src, src_lengths, tgt_in, tgt_lengths)
        (logits * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
        return logits, {name: p.grad.clone() for name, p in model.named_parameters()}

    fast, fast_grads = logits_and_grads()
    monkeypatch.setattr(type(model.decoder), "single_torch_layer", lambda self: False)
    slow, slow_grads = logits_and_grads()
    assert torch.allclose(fast, slow, atol=1e-5)
    for name in slow_grads:
        assert torch.allclose(fast_grads[name], slow_grads[name], rtol=1e-4, atol=1e-5), name
