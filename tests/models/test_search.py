import itertools

import pytest
import torch

from models import search
from models.encoder_decoder import EncoderDecoder
from models.names import MODEL_NAMES
from models.search import beam_search, greedy_search, length_penalty, max_lengths
from models.special_tokens import BOS, EOS, PAD, UNK
from tests.host_reads import count_host_reads
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
    # alpha = 0 only: with alpha > 0 a beam of one may go on past a finished greedy output.
    model = tiny_model(name, num_layers=2)
    src, src_lengths = sources()
    greedy = greedy_search(model, src, src_lengths, max_len_a=1.0, max_len_b=3, alpha=0.0)
    beam = beam_search(model, src, src_lengths, beam_size=1, max_len_a=1.0, max_len_b=3, alpha=0.0)
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


# A fake EncoderDecoder whose log-probabilities are a fixed table over (step, previous token), so
# that the best normalised output can be worked out by hand or by enumeration.
A, B, C = 4, 5, 6  # ordinary words; with UNK, the four words a table model may output
TABLE_VOCAB = 7
WORDS = (UNK, A, B, C)


class TableModel(EncoderDecoder):
    def __init__(self, log_probs: torch.Tensor):
        super().__init__()
        self.register_buffer("table", log_probs)  # (S, V, V): log p(y_t | y_t-1, t), t >= S as S - 1

    def encode(self, src, src_lengths):
        return {"src": src}

    def init_state(self, memory):
        return torch.zeros(1, memory["src"].size(0), dtype=torch.long)  # the step, batch dim 1

    def step(self, prev_tokens, state, memory):
        t = state[0].clamp(max=self.table.size(0) - 1)
        return self.table[t, prev_tokens], state + 1, None

    @property
    def projection(self):
        return torch.nn.Identity()  # the table holds log-probabilities already

    def features(self, src, src_lengths, tgt_in, tgt_lengths=None):
        state, out = self.init_state(self.encode(src, src_lengths)), []
        for i in range(tgt_in.size(1)):
            log_probs, state, _ = self.step(tgt_in[:, i], state, None)
            out.append(log_probs)
        return torch.stack(out, dim=1), None

    def log_prob(self, tokens: list[int]) -> float:
        """log p(tokens EOS)."""
        path = [BOS] + tokens + [EOS]
        return sum(self.table[min(t, self.table.size(0) - 1), path[t], path[t + 1]].item()
                   for t in range(len(path) - 1))


def table_model(probs: dict[tuple[int, int], dict[int, float]], steps: int) -> TableModel:
    """probs[(t, prev)]: the distribution of the next word at step t (missing words get 0); every
    other (t, prev) is uniform over EOS and the four words."""
    table = torch.zeros(steps, TABLE_VOCAB, TABLE_VOCAB, dtype=torch.float64)
    table[:, :, (EOS,) + WORDS] = 1 / 5
    for (t, prev), dist in probs.items():
        table[t, prev] = 0
        for word, p in dist.items():
            table[t, prev, word] = p
    return TableModel(table.log().float())


def random_table_model(seed: int, steps: int = 5) -> TableModel:
    """Random tables whose EOS is unlikely at first and likely after: outputs are short but not
    empty, and sometimes finish a step before a longer output with a better normalised score."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(steps, TABLE_VOCAB, TABLE_VOCAB, generator=g)
    logits[0] = logits[0] / 2
    logits[0, :, EOS] -= 3
    logits[1:, :, EOS] += 2
    return TableModel(torch.log_softmax(logits, dim=-1))


def exhaustive_best(model: TableModel, limit: int, alpha: float) -> float:
    """The best normalised score over every output of at most ``limit`` words."""
    return max(model.log_prob(list(y)) / length_penalty(n + 1, alpha)
               for n in range(limit + 1) for y in itertools.product(WORDS, repeat=n))


def old_rule(monkeypatch):
    """The rule this search replaced: stop as soon as the best extension ends in EOS."""
    monkeypatch.setattr(search, "_settled",
                        lambda top_scores, is_eos, *_: is_eos[:, 0] & top_scores[:, 0].isfinite())


def one_source(n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((1, n), A), torch.tensor([n])


@pytest.mark.parametrize("beam_size", [1, 2, 3])
def test_length_normalisation_can_lengthen_the_output(beam_size, monkeypatch):
    # "A" ends first, as the best extension at step 1 (log p = log .3 + log .5, score -1.729), but
    # "A B" (log .3 + log .45 + log .99, score -1.694) wins once divided by its larger lp.
    model = table_model({(0, BOS): {A: .3, UNK: .29, C: .26, EOS: .14, B: .01},
                         (1, A): {EOS: .5, B: .45, UNK: .03, A: .02},
                         (2, B): {EOS: .99, A: .004, B: .003, UNK: .003}}, steps=5)
    src, src_lengths = one_source()
    kwargs = dict(beam_size=beam_size, max_len_a=0.0, max_len_b=4, alpha=0.6)
    (new,) = beam_search(model, src, src_lengths, **kwargs)
    assert new.tokens == [A, B]
    assert new.log_prob == pytest.approx(model.log_prob([A, B]), abs=1e-6)
    assert new.score == pytest.approx(new.log_prob / length_penalty(3, 0.6), abs=1e-9)
    assert new.score == pytest.approx(exhaustive_best(model, 4, 0.6), abs=1e-6)
    old_rule(monkeypatch)
    (old,) = beam_search(model, src, src_lengths, **kwargs)
    assert old.tokens == [A] and old.score < new.score - 0.03
    if beam_size == 1:  # so with alpha > 0 a beam of one is no longer greedy search
        assert greedy_search(model, src, src_lengths, max_len_a=0.0, max_len_b=4, alpha=0.6)[0].tokens == [A]


@pytest.mark.parametrize("seed", range(4))
def test_beam_of_one_without_normalisation_is_greedy_on_tables(seed):
    model = random_table_model(seed)
    src, src_lengths = pad([[A] * n for n in (1, 2, 3, 4, 5)])
    greedy = greedy_search(model, src, src_lengths, max_len_a=1.0, max_len_b=1, alpha=0.0)
    beam = beam_search(model, src, src_lengths, beam_size=1, max_len_a=1.0, max_len_b=1, alpha=0.0)
    assert [g.tokens for g in greedy] == [b.tokens for b in beam]
    assert [g.score for g in greedy] == pytest.approx([b.score for b in beam], abs=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
def test_wide_beam_matches_exhaustive_search(alpha, monkeypatch):
    # 320 beams hold every prefix of 4 words over WORDS and all 5 * 64 extensions of the 3-word
    # ones, so nothing is pruned: the search is exact, and only its stopping rule can lose the best.
    limit, models = 4, [random_table_model(seed) for seed in range(20)]
    src, src_lengths = one_source(limit)
    kwargs = dict(beam_size=320, max_len_a=1.0, max_len_b=0, alpha=alpha)
    new = [beam_search(model, src, src_lengths, **kwargs)[0] for model in models]
    for model, hyp in zip(models, new):
        assert hyp.score == pytest.approx(exhaustive_best(model, limit, alpha), abs=1e-6)
        assert hyp.log_prob == pytest.approx(model.log_prob(hyp.tokens), abs=1e-5)
        assert hyp.score == pytest.approx(hyp.log_prob / length_penalty(len(hyp.tokens) + 1, alpha), abs=1e-9)
    old_rule(monkeypatch)
    old = [beam_search(model, src, src_lengths, **kwargs)[0] for model in models]
    assert all(o.score <= n.score + 1e-9 for n, o in zip(new, old))
    if alpha > 0:  # the old rule lost the best output for some of these models
        assert any(o.score < n.score - 1e-6 and len(o.tokens) < len(n.tokens) for n, o in zip(new, old))


def _decode_all(models, beam_size, alpha):
    src, src_lengths = sources(n=6, seed=13)
    return [beam_search(m, src, src_lengths, beam_size=beam_size, max_len_a=1.0, max_len_b=2, alpha=alpha)
            for m in models]


@pytest.mark.parametrize("beam_size", [3, 5])
def test_never_worse_than_stopping_at_the_first_eos(beam_size, monkeypatch):
    # Same beams as the old rule until it stopped; after that the best only ever improves.
    models = [tiny_model(name, seed=s) for name in ("rnnenc-gru", "rnnsearch-gru") for s in (1, 2)]
    models += [random_table_model(s, steps=8) for s in range(10)]
    new = _decode_all(models, beam_size, 0.6)
    old_rule(monkeypatch)
    old = _decode_all(models, beam_size, 0.6)
    pairs = [(n, o) for ns, os in zip(new, old) for n, o in zip(ns, os)]
    assert all(n.score >= o.score - 1e-9 for n, o in pairs)
    assert any(n.score > o.score + 1e-6 for n, o in pairs)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_every_output_ends_within_its_limit(alpha):
    # EOS is unlikely, so the bound rarely stops a sentence before its limit; limits differ.
    table = torch.randn(8, TABLE_VOCAB, TABLE_VOCAB, generator=torch.Generator().manual_seed(4))
    table[:, :, EOS] -= 4
    model = TableModel(torch.log_softmax(table, dim=-1))
    src, src_lengths = pad([[A] * n for n in (1, 3, 6, 2, 8, 5)])
    limits = max_lengths(src_lengths, 0.5, 1).tolist()
    together = beam_search(model, src, src_lengths, beam_size=3, max_len_a=0.5, max_len_b=1, alpha=alpha)
    for b, (hyp, limit) in enumerate(zip(together, limits)):
        assert len(hyp.tokens) <= limit
        assert not {PAD, BOS, EOS} & set(hyp.tokens)
        assert hyp.log_prob == pytest.approx(model.log_prob(hyp.tokens), abs=1e-5)
        assert hyp.score == pytest.approx(hyp.log_prob / length_penalty(len(hyp.tokens) + 1, alpha))
        # A sentence that stopped early in the batch does not change while the others go on.
        n = int(src_lengths[b])
        (alone,) = beam_search(model, src[b : b + 1, :n], src_lengths[b : b + 1], beam_size=3, max_len_a=0.5,
                               max_len_b=1, alpha=alpha)
        assert alone.tokens == hyp.tokens and alone.score == pytest.approx(hyp.score, abs=1e-9)
    assert max(len(h.tokens) for h in together) == max(limits)  # some output runs to its limit


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("name", ["rnnsearch-gru", "rnnenc-gru"])
def test_decoding_on_a_gpu_reads_back_only_every_few_steps(name, beam, monkeypatch):
    """As on a GPU (reads not free): no per-step .any() / done.all(); the outputs do not change."""

    model = tiny_model(name, seed=3)
    src, src_lengths, _, _ = fixed_pairs(5, seed=4, min_len=6, max_len=9)
    decode = (lambda: search.greedy_search(model, src, src_lengths)) if beam == 1 else (
        lambda: search.beam_search(model, src, src_lengths, beam_size=beam))
    with count_host_reads() as cpu_reads:
        expected = decode()
    monkeypatch.setattr(search, "_reads_are_free", lambda device: False)
    with count_host_reads() as gpu_reads:
        hypotheses = decode()
    assert [(h.tokens, round(h.score, 6)) for h in hypotheses] == [(h.tokens, round(h.score, 6)) for h in expected]
    steps = max(len(h.tokens) for h in expected) + 1
    in_loop = gpu_reads.count("__bool__")  # done.all() / .any() in `if`
    assert in_loop <= steps // search.STOP_CHECK_EVERY + 1 < cpu_reads.count("__bool__")


def test_decoding_builds_the_gate_weights_once_per_search(monkeypatch):
    model = tiny_model("rnnsearch-gru")
    assert model._gate_weights() is not model._gate_weights()  # outside a search: fresh, in the graph
    with torch.no_grad(), model.decoding():
        assert model._gate_weights() is model._gate_weights()  # no torch.cat per decoding step
    src, src_lengths, _, _ = fixed_pairs(3, seed=5)
    built = []
    original = type(model)._gate_weights
    monkeypatch.setattr(type(model), "_gate_weights",
                        lambda self: (built.append(1) if self._gate_cache is None else None) or original(self))
    greedy_search(model, src, src_lengths)
    beam_search(model, src, src_lengths, beam_size=3)
    assert len(built) == 2  # once per search


def test_a_search_sees_weights_changed_without_a_version_bump():
    """Fused Adam updates in place without bumping the version counter: nothing may go stale."""
    model = tiny_model("rnnsearch-gru")
    src, src_lengths, _, _ = fixed_pairs(3, seed=5)
    before = [h.tokens for h in greedy_search(model, src, src_lengths)]
    with torch.no_grad():
        model.decoder.rnn.weight_hh_l0.data.normal_(0, 3.0)  # .data: no version bump, as fused Adam
        model.attention.W.weight.data.normal_(0, 3.0)
    after = greedy_search(model, src, src_lengths)
    expected = search.greedy_search.__wrapped__.__wrapped__(model, src, src_lengths)  # no decoding() at all
    assert [h.tokens for h in after] == [h.tokens for h in expected] != before
