import pytest
import torch

from models.registry import MODEL_NAMES
from models.search import beam_search, greedy_search, length_penalty, max_lengths
from models.special_tokens import BOS, EOS, PAD
from tests.models.util import SRC_VOCAB, fixed_pairs, pad, random_sentences, tiny_model, train

SEQ2SEQ = [name for name in MODEL_NAMES if not name.startswith("lm-")]


def sources(n: int = 6, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return pad(random_sentences(n, 1, 8, SRC_VOCAB, g))


def sequence_log_prob(model, src, src_lengths, tokens: list[int]) -> float:
    """log p(tokens EOS | src) by teacher forcing, to check the scores the search reports."""
    tgt_in = torch.tensor([[BOS] + tokens])
    logits, _ = model(src, src_lengths, tgt_in)
    log_probs = torch.log_softmax(logits[0], -1)
    return sum(log_probs[t, w].item() for t, w in enumerate(tokens + [EOS]))


@pytest.fixture(scope="module")
def trained():
    """A tiny RNNsearch trained for a few steps: peaked enough to decode, not yet memorised."""
    model = tiny_model("rnnsearch-gru", emb_size=16, hidden_size=32, maxout_size=16, attention_size=16)
    train(model, *fixed_pairs(32, seed=5), steps=30)
    return model


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_beam_of_one_is_greedy(name):
    model = tiny_model(name, num_layers=2)
    src, src_lengths = sources()
    greedy = greedy_search(model, src, src_lengths, max_len_a=1.0, max_len_b=3)
    beam = beam_search(model, src, src_lengths, beam_size=1, max_len_a=1.0, max_len_b=3)
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-9)
        assert g.score == pytest.approx(b.score, abs=1e-9)
        assert (g.attention is None) == (b.attention is None)
        if g.attention is not None:
            assert torch.equal(g.attention, b.attention)


def test_beam_finds_at_least_greedy_log_prob(trained):
    src, src_lengths, _, _ = fixed_pairs(32, seed=5)
    greedy = greedy_search(trained, src, src_lengths, alpha=0.0)
    beam = beam_search(trained, src, src_lengths, beam_size=5, alpha=0.0)
    for b, (g, h) in enumerate(zip(greedy, beam)):
        assert h.log_prob >= g.log_prob - 1e-6
        # The reported log-probability is the model's, rescored by teacher forcing.
        one = (src[b : b + 1], src_lengths[b : b + 1])
        assert h.log_prob == pytest.approx(sequence_log_prob(trained, *one, h.tokens), abs=1e-4)
        assert h.score == pytest.approx(h.log_prob, abs=1e-9)  # alpha = 0: no normalisation
    assert sum(h.log_prob for h in beam) > sum(g.log_prob for g in greedy)  # and strictly better overall


def test_batched_beam_equals_one_sentence_at_a_time(trained):
    src, src_lengths = sources(n=5, seed=7)
    together = beam_search(trained, src, src_lengths, beam_size=4, alpha=0.6)
    for b, hyp in enumerate(together):
        n = int(src_lengths[b])
        (alone,) = beam_search(trained, src[b : b + 1, :n], src_lengths[b : b + 1], beam_size=4, alpha=0.6)
        assert alone.tokens == hyp.tokens
        assert alone.score == pytest.approx(hyp.score, abs=1e-5)
        assert torch.allclose(alone.attention, hyp.attention, atol=1e-6)


def test_outputs_respect_length_limit_and_specials(trained):
    src, src_lengths = sources(n=8, seed=11)
    limits = max_lengths(src_lengths, 0.5, 1).tolist()
    for search in (greedy_search, lambda *a, **k: beam_search(*a, beam_size=3, **k)):
        for hyp, limit, n in zip(search(trained, src, src_lengths, max_len_a=0.5, max_len_b=1), limits,
                                 src_lengths.tolist()):
            assert len(hyp.tokens) <= limit
            assert not {PAD, BOS, EOS} & set(hyp.tokens)
            assert hyp.attention.shape == (len(hyp.tokens), n)
            assert torch.allclose(hyp.attention.sum(-1), torch.ones(len(hyp.tokens)), atol=1e-5)
            assert hyp.score == pytest.approx(hyp.log_prob / length_penalty(len(hyp.tokens) + 1, 0.6))


def test_language_model_sampling():
    model = tiny_model("lm-lstm")
    train(model, None, None, *fixed_pairs(8, seed=2)[2:], steps=30)
    draw = dict(max_len=6, temperature=0.8, top_k=5)
    samples = model.sample(20, **draw, generator=torch.Generator().manual_seed(0))
    assert len(samples) == 20
    assert all(len(s) <= 6 and not {PAD, BOS, EOS} & set(s) for s in samples)
    assert samples == model.sample(20, **draw, generator=torch.Generator().manual_seed(0))
    assert model.sample(3, 6, temperature=0.0) == model.sample(3, 6, top_k=1)  # both are argmax
