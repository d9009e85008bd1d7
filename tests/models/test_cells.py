import math

import pytest
import torch

from models.cells import CELLS, Recurrent
from models.jordan import JordanRNN


def test_jordan_matches_hand_computed_two_steps():
    """h_t = tanh(W_xh x_t + W_yh y_{t-1} + b_h), y_t = W_hy h_t + b_y, y_0 = 0; I=1, H=2, O=1."""
    net = JordanRNN(input_size=1, hidden_size=2, output_size=1)
    layer = net.layers[0]
    with torch.no_grad():
        layer.xh.weight.copy_(torch.tensor([[0.5], [-0.25]]))  # W_xh
        layer.xh.bias.copy_(torch.tensor([0.1, 0.0]))  # b_h
        layer.yh.weight.copy_(torch.tensor([[1.0], [0.5]]))  # W_yh
        layer.hy.weight.copy_(torch.tensor([[2.0, -1.0]]))  # W_hy
        layer.hy.bias.copy_(torch.tensor([0.5]))  # b_y
    x1, x2 = 1.0, 2.0
    y1 = 2.0 * math.tanh(0.5 * x1 + 0.1) - math.tanh(-0.25 * x1) + 0.5
    y2 = 2.0 * math.tanh(0.5 * x2 + 1.0 * y1 + 0.1) - math.tanh(-0.25 * x2 + 0.5 * y1) + 0.5

    out, y_n = net(torch.tensor([[[x1], [x2]]]))  # (1, 2, 1)
    assert out.flatten().tolist() == pytest.approx([y1, y2], abs=1e-6)
    assert y_n.flatten().tolist() == pytest.approx([y2], abs=1e-6)

    # A padded step must not move the state: y_n stays y1 for a length-1 sentence.
    out, y_n = net(torch.tensor([[[x1], [x2]]]), torch.tensor([1]))
    assert out.flatten().tolist() == pytest.approx([y1, 0.0], abs=1e-6)
    assert y_n.item() == pytest.approx(y1, abs=1e-6)


def test_unknown_cell_is_rejected():
    with pytest.raises(ValueError, match="allowed: rnn, lstm, gru, jordan"):
        Recurrent("elman", 4, 4)


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_padding_does_not_change_a_sentence(cell, bidirectional):
    torch.manual_seed(0)
    rnn = Recurrent(cell, 5, 6, num_layers=2, bidirectional=bidirectional).eval()
    lengths = torch.tensor([3, 7, 5])
    x = torch.randn(3, 9, 5)  # two extra padded steps beyond the longest sentence
    out, state = rnn(x, lengths)
    assert out.shape == (3, 9, rnn.output_size)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = rnn(x[b : b + 1, :n], lengths[b : b + 1])
        assert torch.allclose(out[b, :n], alone[0], atol=1e-6)
        assert torch.all(out[b, n:] == 0)
        for s, a in zip(_as_tuple(state), _as_tuple(alone_state)):
            assert torch.allclose(s[:, b], a[:, 0], atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_step_matches_forward(cell):
    torch.manual_seed(0)
    rnn = Recurrent(cell, 5, 6, num_layers=2).eval()
    x = torch.randn(2, 4, 5)
    out, final = rnn(x)
    state, steps = None, []
    for t in range(4):
        y, state = rnn.step(x[:, t], state)
        steps.append(y)
    assert torch.allclose(torch.stack(steps, 1), out, atol=1e-6)
    for s, f in zip(_as_tuple(state), _as_tuple(final)):
        assert torch.allclose(s, f, atol=1e-6)
    assert rnn.hidden(final).shape == (2, 2, 6)


def test_jordan_backward_direction_reads_right_to_left():
    torch.manual_seed(0)
    net = JordanRNN(3, 4, 2, bidirectional=True)
    x = torch.randn(1, 5, 3)
    out, y_n = net(x)  # (1, 5, 4)
    mask = torch.ones(1, 5, dtype=torch.bool)
    backward, last = net.layers[1](x.flip(1), mask, torch.zeros(1, 2))
    assert torch.allclose(out[..., 2:], backward.flip(1), atol=1e-6)
    assert torch.allclose(y_n[1], last, atol=1e-6)  # final backward state is the one at word 1


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_recurs_in_fp32_under_autocast(cell, packed):
    """CPU autocast runs nn.LSTM (unpacked), nn.RNN and Jordan's linear layers in bf16 but nn.GRU in
    fp32: the cells would be compared at different precisions, with bf16 states carried across steps."""
    torch.manual_seed(0)
    rnn = Recurrent(cell, 5, 6).eval()
    x, lengths = torch.randn(2, 4, 5), (torch.tensor([4, 3]) if packed else None)
    reference, _ = rnn(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = rnn(x.bfloat16(), lengths)
    assert out.dtype == torch.float32 and all(s.dtype == torch.float32 for s in _as_tuple(state))
    assert torch.allclose(out, rnn(x.bfloat16().float(), lengths)[0]) and out.shape == reference.shape


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_unpacked_run_equals_the_packed_one(cell, bidirectional, num_layers, monkeypatch):
    """GRU/Elman stacks with lengths run unpacked (no lengths on the host): the packed path's numbers."""
    import models.cells

    torch.manual_seed(0)
    rnn = Recurrent(cell, 5, 6, num_layers=num_layers, bidirectional=bidirectional).eval()
    x = torch.randn(4, 8, 5, requires_grad=True)
    lengths = torch.tensor([3, 8, 1, 5])
    weights = torch.randn(4, 8, rnn.output_size)

    def run():
        out, state = rnn(x, lengths)
        return [out, state, *torch.autograd.grad((out * weights).sum() + state.sum(), [x, *rnn.parameters()])]

    unpacked = run()
    monkeypatch.setattr(models.cells, "_UNPACKED", {})  # every cell packs
    packed = run()
    for a, b in zip(unpacked, packed):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.all(unpacked[0][0, 3:] == 0)
