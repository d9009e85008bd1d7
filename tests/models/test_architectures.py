import pytest
import torch

from models.encoder_decoder import EncoderDecoder
from models.language_model import RNNLanguageModel
from models.names import MODEL_NAMES
from models.sequences import add_bos_eos
from models.special_tokens import BOS, EOS, PAD
from tests.models.util import SRC_VOCAB, TGT_VOCAB, pad, random_sentences, tiny_model


def batch(seed: int = 0, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    src, src_lengths = pad(random_sentences(n, 1, 7, SRC_VOCAB, g))
    y, y_lengths = pad(random_sentences(n, 1, 6, TGT_VOCAB, g))
    tgt_in, tgt_out, tgt_lengths = add_bos_eos(y, y_lengths)
    return src, src_lengths, tgt_in, tgt_out, tgt_lengths


def run(model, src, src_lengths, tgt_in, tgt_lengths):
    """(logits, attention or None) for every family."""
    if isinstance(model, RNNLanguageModel):
        return model(tgt_in, tgt_lengths), None
    return model(src, src_lengths, tgt_in, tgt_lengths)


def test_add_bos_eos():
    y, lengths = pad([[5, 6, 7], [8]])
    tgt_in, tgt_out, tgt_lengths = add_bos_eos(y, lengths)
    assert tgt_in.tolist() == [[BOS, 5, 6, 7], [BOS, 8, PAD, PAD]]
    assert tgt_out.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert tgt_lengths.tolist() == [4, 2]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes(name):
    model = tiny_model(name, num_layers=2, dropout=0.1)
    src, src_lengths, tgt_in, _, tgt_lengths = batch()
    logits, attention = run(model, src, src_lengths, tgt_in, tgt_lengths)
    assert logits.shape == (3, tgt_in.size(1), TGT_VOCAB)
    if name.startswith("rnnsearch-"):
        assert attention.shape == (3, tgt_in.size(1), src.size(1))
    else:
        assert attention is None
    if isinstance(model, EncoderDecoder):
        memory = model.encode(src, src_lengths)
        log_probs, _, step_attention = model.step(tgt_in[:, 0], model.init_state(memory), memory)
        assert log_probs.shape == (3, TGT_VOCAB)
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3))
        assert (step_attention is None) == (attention is None)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_padding_does_not_change_a_sentence(name):
    model = tiny_model(name, num_layers=2)
    src, src_lengths, tgt_in, _, tgt_lengths = batch(seed=1, n=4)
    # Two extra columns of padding on both sides, beyond the longest sentence.
    src = torch.nn.functional.pad(src, (0, 2))
    tgt_in = torch.nn.functional.pad(tgt_in, (0, 2))
    logits, attention = run(model, src, src_lengths, tgt_in, tgt_lengths)
    for b in range(4):
        nx, ny = int(src_lengths[b]), int(tgt_lengths[b])
        alone, alone_attention = run(model, src[b : b + 1, :nx], src_lengths[b : b + 1],
                                     tgt_in[b : b + 1, :ny], tgt_lengths[b : b + 1])
        assert torch.allclose(logits[b, :ny], alone[0], atol=1e-5)
        if attention is not None:
            assert torch.allclose(attention[b, :ny, :nx], alone_attention[0], atol=1e-6)
            assert torch.all(attention[b, :, nx:] == 0)
            assert torch.allclose(attention[b].sum(-1), torch.ones(attention.size(1)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_teacher_forcing_equals_stepwise_decoding(name):
    model = tiny_model(name, num_layers=2, dropout=0.3)  # eval mode: dropout off in both paths
    src, src_lengths, tgt_in, _, tgt_lengths = batch(seed=2, n=4)
    logits, attention = run(model, src, src_lengths, tgt_in, tgt_lengths)
    expected = torch.log_softmax(logits, -1)
    real = torch.arange(tgt_in.size(1)) < tgt_lengths.unsqueeze(1)  # (B, T_y)
    if isinstance(model, EncoderDecoder):
        memory = model.encode(src, src_lengths)
        state = model.init_state(memory)
    else:
        state = None
    for t in range(tgt_in.size(1)):
        if isinstance(model, EncoderDecoder):
            log_probs, state, step_attention = model.step(tgt_in[:, t], state, memory)
            if attention is not None:
                assert torch.allclose(step_attention, attention[:, t], atol=1e-6)
        else:
            log_probs, state = model.step(tgt_in[:, t], state)
        assert torch.allclose(log_probs[real[:, t]], expected[real[:, t], t], atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trip(name, tmp_path):
    model = tiny_model(name, seed=0)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    other = tiny_model(name, seed=1)
    other.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    src, src_lengths, tgt_in, _, tgt_lengths = batch()
    a, att_a = run(model, src, src_lengths, tgt_in, tgt_lengths)
    b, att_b = run(other, src, src_lengths, tgt_in, tgt_lengths)
    assert torch.equal(a, b)
    assert att_a is None or torch.equal(att_a, att_b)


def test_language_model_condition_changes_the_output():
    model = tiny_model("lm-gru", cond_size=3)
    tokens = torch.tensor([[BOS, 5, 6], [BOS, 5, 6]])
    logits = model(tokens, condition=torch.eye(3)[:2])
    assert not torch.allclose(logits[0], logits[1])
    same = model(tokens, condition=torch.eye(3)[0])  # one (C,) vector is broadcast to the batch
    assert torch.allclose(same[0], same[1]) and torch.allclose(same[0], logits[0])
    with pytest.raises(ValueError, match="cond_size"):
        model(tokens)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnnsearch_gate_path_matches_the_module_path(cell, monkeypatch):
    """The single-layer decoder's fused gates give the numbers of calling nn.GRU/LSTM/RNN per step."""
    model = tiny_model(f"rnnsearch-{cell}", seed=0)
    src, src_lengths, tgt_in, _, tgt_lengths = batch(seed=2, n=4)
    fused, fused_attention = model(src, src_lengths, tgt_in, tgt_lengths)
    memory = model.encode(src, src_lengths)
    fused_step, _, _ = model.step(tgt_in[:, 0], model.init_state(memory), memory)
    monkeypatch.setattr(type(model.decoder), "single_torch_layer", lambda self: False)
    plain, plain_attention = model(src, src_lengths, tgt_in, tgt_lengths)
    plain_step, _, _ = model.step(tgt_in[:, 0], model.init_state(memory), memory)
    assert torch.allclose(fused, plain, atol=1e-5)
    assert torch.allclose(fused_attention, plain_attention, atol=1e-6)
    assert torch.allclose(fused_step, plain_step, atol=1e-5)
