"""RNNenc's ablation controls (models/rnnenc.py): |c| apart from the hidden size, the source read
backwards, and c from a bidirectional encoder; each one knob that changes only what it names."""
import pytest
import torch

from models.sequences import reverse_padded
from tests.models.util import SIZES, fixed_pairs, pad, tiny_model


def test_reverse_padded_reverses_each_sentence_and_keeps_padding():
    x, lengths = pad([[5, 6, 7], [8, 9], [4]])
    assert reverse_padded(x, lengths).tolist() == [[7, 6, 5], [9, 8, 0], [4, 0, 0]]
    embedded = torch.arange(18.0).view(3, 3, 2)
    flipped = reverse_padded(embedded, lengths)
    assert torch.equal(flipped[1, :2], embedded[1, :2].flip(0)) and torch.equal(flipped[1, 2], embedded[1, 2])


def test_reverse_source_is_the_plain_model_reading_reversed_input():
    src, src_lengths, _, _ = fixed_pairs(5)
    plain, reversed_reader = tiny_model("rnnenc-gru"), tiny_model("rnnenc-gru", reverse_source=True)
    reversed_reader.load_state_dict(plain.state_dict())  # the knob adds no weight
    expected = plain.encode(reverse_padded(src, src_lengths), src_lengths)["context"]
    assert torch.allclose(reversed_reader.encode(src, src_lengths)["context"], expected, atol=1e-6)
    assert not torch.allclose(plain.encode(src, src_lengths)["context"], expected, atol=1e-3)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_bidirectional_context_reads_both_ends_whatever_the_padding(cell):
    src, src_lengths, y, y_lengths = fixed_pairs(4, min_len=2, max_len=9)
    model = tiny_model(f"rnnenc-{cell}", bidirectional=True)
    H = SIZES["hidden_size"]
    assert model.to_context.in_features == 2 * H
    batch = model.encode(src, src_lengths)["context"]
    for b in range(len(src)):  # each sentence alone, without padding: the same c
        alone = model.encode(src[b:b + 1, : int(src_lengths[b])], src_lengths[b:b + 1])["context"]
        assert torch.allclose(batch[b:b + 1], alone, atol=1e-5)
    # h←_1 reads the first word last: changing it moves c more in the bidirectional model.
    first_changed = src.clone()
    first_changed[:, 0] = torch.where(src[:, 0] == 5, 6, 5)
    plain = tiny_model(f"rnnenc-{cell}")
    shift = {name: (m.encode(first_changed, src_lengths)["context"] - m.encode(src, src_lengths)["context"]).norm()
             for name, m in (("bidirectional", model), ("plain", plain))}
    assert shift["bidirectional"] > 0
    logits, _ = model(src, src_lengths, y)
    assert logits.shape[:2] == y.shape and torch.isfinite(logits).all()


def test_context_size_sets_the_bottleneck_alone():
    src, src_lengths, y, _ = fixed_pairs(3)
    small = tiny_model("rnnenc-gru", context_size=4)
    assert small.encode(src, src_lengths)["context"].shape == (3, 4)
    assert small.decoder.hidden_size == SIZES["hidden_size"]  # the decoder keeps its own size
    logits, _ = small(src, src_lengths, y)
    assert logits.shape[:2] == y.shape
    # The decoder step (greedy/beam search) sees the same c as teacher forcing.
    memory = small.encode(src, src_lengths)
    log_probs, _, _ = small.step(y[:, 0], small.init_state(memory), memory)
    assert log_probs.shape == (3, logits.size(-1))
    default = tiny_model("rnnenc-gru")
    parameters = {name: sum(p.numel() for p in m.parameters()) for name, m in (("small", small), ("default", default))}
    assert parameters["small"] < parameters["default"]


@pytest.mark.parametrize("control", [{"context_size": 4}, {"bidirectional": True}, {"reverse_source": True}])
def test_each_control_trains_what_it_decodes(control):
    """Teacher forcing (the single-layer decoder's one-pass Function) gives the log-probabilities that
    step-by-step decoding (greedy and beam search's path) gives, for every control."""
    src, src_lengths, y, y_lengths = fixed_pairs(4, seed=3)
    model = tiny_model("rnnenc-gru", **control)
    logits, _ = model(src, src_lengths, y)
    expected = torch.log_softmax(logits, -1)
    memory = model.encode(src, src_lengths)
    state = model.init_state(memory)
    for t in range(y.size(1)):
        log_probs, state, _ = model.step(y[:, t], state, memory)
        real = t < y_lengths
        assert torch.allclose(log_probs[real], expected[real, t], atol=1e-5)
