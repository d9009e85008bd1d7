"""Greedy decoding and batched beam search for any ``EncoderDecoder`` (RNNenc, RNNsearch).

Both run the whole batch at once on the model's device (beam search: B*K rows), and return one
``Hypothesis`` per sentence, in batch order.

- Output length: a sentence of |x| source words gets at most floor(max_len_a * |x| + max_len_b)
  output words; at that step EOS is the only allowed token, so every hypothesis ends with EOS.
- Length normalisation (Wu et al. 2016, GNMT, Eq. 14): hypotheses are ranked by
  ``score = log p(y, EOS | x) / lp``, ``lp = ((5 + |y| + 1) / 6) ** alpha`` (EOS counted);
  alpha = 0 ranks by plain log-probability. Greedy reports the same score.
- Beam search keeps the K best unfinished hypotheses per sentence. At each step it takes the 2K
  best extensions: those ending in EOS among the first K are finished and set aside (only the best
  one per sentence is kept, as a tensor), the K best others go on. A sentence stops at its length
  limit, or once no open hypothesis can still beat its best finished one: log-probabilities only
  fall and lp grows with length (alpha > 0), so an open hypothesis with log-probability s scores at
  most s / lp(limit + 1), s itself with alpha = 0. Stopping as soon as the best extension ends in
  EOS (OpenNMT) would never let a longer hypothesis overtake a finished one through lp, which
  biases outputs short; stopping after K finished ones (fairseq) can end before the greedy path
  does. With alpha = 0 and K = 1 this is greedy search.
- PAD and BOS are never produced. Both run without gradients in eval mode (no dropout) and restore
  the model's mode afterwards.
"""

import functools
from dataclasses import dataclass

import torch

from models.encoder_decoder import EncoderDecoder
from models.special_tokens import BOS, EOS, PAD


@dataclass
class Hypothesis:
    tokens: list[int]  # output words, without BOS/EOS
    log_prob: float  # log p(tokens, EOS | source), natural log
    score: float  # log_prob / length penalty: what the search ranks by
    attention: torch.Tensor | None  # (len(tokens), source length) on the CPU, RNNsearch only


def length_penalty(length: torch.Tensor | int, alpha: float):
    """GNMT's lp for a hypothesis of ``length`` predicted symbols (EOS included)."""
    return ((5 + length) / 6) ** alpha


def max_lengths(src_lengths: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """(B,) longest output per sentence (words, EOS not counted), at least 1."""
    return (a * src_lengths.double() + b).floor().long().clamp(min=1)


# On a GPU every read of a tensor's value into Python (``.any()``, ``done.all()``, a boolean mask's
# size) makes the host wait for the device, and a decoding step is a few small kernels: the GPU idles.
STOP_CHECK_EVERY = 8  # steps between "is every sentence done?" on a GPU (a CPU checks every step)


def _reads_are_free(device: torch.device) -> bool:
    """On a CPU reading a value costs nothing (and saves work); on a GPU it stalls the device."""
    return device.type == "cpu"


def _check_done(t: int, device: torch.device) -> bool:
    """Whether step t looks at ``done``. Steps after every sentence is done change no output (their
    words fall after each EOS, finished scores are kept), so checking every few steps only costs
    up to STOP_CHECK_EVERY - 1 extra steps."""
    return _reads_are_free(device) or t % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1


def _restrict(log_probs: torch.Tensor, force_eos: torch.Tensor) -> torch.Tensor:
    """log_probs (N, V), in place: forbid PAD and BOS everywhere and everything but EOS where
    force_eos (N,). In place and by column, never a boolean mask of data-dependent size."""
    log_probs[:, PAD] = float("-inf")
    log_probs[:, BOS] = float("-inf")
    if not _reads_are_free(log_probs.device) or force_eos.any():  # the CPU skips the fill on most steps
        eos = log_probs[:, EOS].clone()
        log_probs.masked_fill_(force_eos.unsqueeze(1), float("-inf"))
        log_probs[:, EOS] = eos
    return log_probs


def _settled(top_scores: torch.Tensor, is_eos: torch.Tensor, best_score: torch.Tensor, t: int,
             lp_limit: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B,) True where no open hypothesis can still beat the best finished one (normalised score).

    top_scores, is_eos (B, 2K): step t's best extensions, whose best non-EOS one is the best open
    hypothesis (t + 1 words, -inf if none); lp_limit (B,): lp(limit + 1), float64. An open one ends
    with EOS at length t + 2 at the earliest, limit + 1 at the latest, with a log-probability no
    higher than now: s / lp is monotone in lp and lp in length, so the larger of the two ends bounds
    it, for any sign of s or alpha (s <= 0, alpha > 0: the far end). A tie stops: it never replaces
    the best.
    """
    open_best = top_scores.masked_fill(is_eos, float("-inf")).amax(dim=1)  # (B,)
    bound = torch.maximum(open_best / length_penalty(t + 2, alpha), open_best / lp_limit)
    return bound <= best_score


def _hypotheses(tokens: torch.Tensor, lengths: torch.Tensor, log_probs: torch.Tensor, alpha: float,
                attention: torch.Tensor | None, src_lengths: torch.Tensor) -> list[Hypothesis]:
    """Batch tensors (B, T_y), (B,), (B,), (B, T_y, T_x) -> one Hypothesis per sentence."""
    tokens, lengths, log_probs = tokens.cpu(), lengths.tolist(), log_probs.tolist()
    src_lengths = src_lengths.tolist()
    if attention is not None:
        attention = attention.float().cpu()
    out = []
    for b, n in enumerate(lengths):
        att = None if attention is None else attention[b, :n, : src_lengths[b]]
        score = log_probs[b] / length_penalty(n + 1, alpha)
        out.append(Hypothesis(tokens[b, :n].tolist(), log_probs[b], score, att))
    return out


def _in_decoding(search):
    """Runs a search inside ``model.decoding()``: the weights are fixed throughout it."""
    @functools.wraps(search)
    def wrapped(model: EncoderDecoder, *args, **kwargs):
        with model.decoding():
            return search(model, *args, **kwargs)
    return wrapped


@torch.no_grad()
@_in_decoding
def greedy_search(model: EncoderDecoder, src: torch.Tensor, src_lengths: torch.Tensor,
                  max_len_a: float = 1.5, max_len_b: float = 10, alpha: float = 0.6) -> list[Hypothesis]:
    """The most likely word at each step. src (B, T_x), src_lengths (B,)."""
    was_training = model.training
    model.eval()
    src_lengths = src_lengths.to(src.device)
    memory = model.encode(src, src_lengths)
    B, device = src.size(0), src.device
    limit = max_lengths(src_lengths, max_len_a, max_len_b)  # (B,)
    prev = torch.full((B,), BOS, dtype=torch.long, device=device)
    state = model.init_state(memory)
    log_prob = torch.zeros(B, dtype=torch.float64, device=device)
    length = torch.zeros(B, dtype=torch.long, device=device)  # words before EOS
    done = torch.zeros(B, dtype=torch.bool, device=device)
    words, alphas = [], []
    for t in range(int(limit.max()) + 1):
        log_probs, state, attention = model.step(prev, state, memory)  # (B, V)
        best, prev = _restrict(log_probs, t >= limit).max(-1)  # (B,), (B,)
        log_prob += best.double().masked_fill(done, 0)
        length += (~done & (prev != EOS)).long()
        done |= prev == EOS
        words.append(prev)
        alphas.append(attention)
        if _check_done(t, device) and done.all():
            break
    model.train(was_training)
    attention = None if alphas[0] is None else torch.stack(alphas, dim=1)  # (B, T_y, T_x)
    return _hypotheses(torch.stack(words, dim=1), length, log_prob, alpha, attention, src_lengths)


@torch.no_grad()
@_in_decoding
def beam_search(model: EncoderDecoder, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int = 5,
                max_len_a: float = 1.5, max_len_b: float = 10, alpha: float = 0.6) -> list[Hypothesis]:
    """Batched beam search; returns the best finished hypothesis of each sentence."""
    was_training = model.training
    model.eval()
    src_lengths = src_lengths.to(src.device)
    memory = model.encode(src, src_lengths)
    B, K, T_x, device = src.size(0), beam_size, src.size(1), src.device
    limit = max_lengths(src_lengths, max_len_a, max_len_b)  # (B,)
    T_max = int(limit.max())
    lp_limit = length_penalty(limit.double() + 1, alpha)  # (B,) lp of the longest hypothesis allowed
    rows = torch.arange(B, device=device)
    memory = model.reorder_memory(memory, rows.repeat_interleave(K))  # (B*K, …): K copies each
    state = model.init_state(memory)
    prev = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    # Only beam 0 is alive at the start, so the first step does not pick K copies of one word.
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # words so far
    att_history = None  # (B, K, t, T_x) for models with attention
    # The best finished hypothesis per sentence, set aside.
    best_score = torch.full((B,), float("-inf"), dtype=torch.float64, device=device)
    best_log_prob = torch.full((B,), float("-inf"), dtype=torch.float64, device=device)
    best_tokens = torch.full((B, T_max), PAD, dtype=torch.long, device=device)
    best_length = torch.zeros(B, dtype=torch.long, device=device)
    best_att = None
    done = torch.zeros(B, dtype=torch.bool, device=device)

    for t in range(T_max + 1):
        log_probs, state, attention = model.step(prev, state, memory)  # (B*K, V), …, (B*K, T_x)
        log_probs = _restrict(log_probs, (t >= limit).repeat_interleave(K))
        # The 2K best extensions of a sentence are among the 2K best words of each of its beams:
        # select those per beam first, so only B·K·2K candidates (not B·K·V) are scored in float64.
        per_beam = min(2 * K, log_probs.size(-1))
        word_scores, words = log_probs.topk(per_beam, dim=-1)  # (B*K, per_beam)
        candidates = (scores.unsqueeze(-1) + word_scores.double().view(B, K, per_beam)).view(B, K * per_beam)
        top_scores, top_index = candidates.topk(2 * K, dim=1)  # (B, 2K)
        top_beam, top_word = top_index // per_beam, words.view(B, K * per_beam).gather(1, top_index)  # (B, 2K)
        if attention is not None and att_history is None:
            att_history = attention.new_zeros(B, K, 0, T_x)
            best_att = attention.new_zeros(B, T_max, T_x)

        # Set aside hypotheses that end here: EOS among the K best, alive, sentence not done.
        is_eos = top_word == EOS
        ends = is_eos[:, :K] & top_scores[:, :K].isfinite() & ~done.unsqueeze(1)  # (B, K)
        normalised = (top_scores[:, :K] / length_penalty(t + 1, alpha)).masked_fill(~ends, float("-inf"))
        new_score, k = normalised.max(dim=1)  # (B,)
        better = new_score > best_score
        beam = top_beam[rows, k]  # (B,) which live beam the best new one extends
        best_score = torch.where(better, new_score, best_score)
        best_log_prob = torch.where(better, top_scores[rows, k], best_log_prob)
        best_length = torch.where(better, t, best_length)
        best_tokens[:, :t] = torch.where(better.unsqueeze(1), history[rows, beam], best_tokens[:, :t])
        if best_att is not None:
            best_att[:, :t] = torch.where(better.view(B, 1, 1), att_history[rows, beam], best_att[:, :t])
        done |= _settled(top_scores, is_eos, best_score, t, lp_limit, alpha) | (t >= limit)
        if _check_done(t, device) and done.all():
            break

        # Go on with the K best extensions that do not end (EOS ranked last, order kept otherwise).
        order = (torch.arange(2 * K, device=device) + is_eos * 2 * K).argsort(dim=1)[:, :K]  # (B, K)
        scores = top_scores.gather(1, order)  # (B, K)
        beams = top_beam.gather(1, order)  # (B, K) parent beam of each survivor
        words = top_word.gather(1, order)  # (B, K)
        parents = (rows.unsqueeze(1) * K + beams).view(-1)  # (B*K,) rows of the flattened batch
        state = model.reorder_state(state, parents)
        history = torch.cat([history[rows.unsqueeze(1), beams], words.unsqueeze(-1)], dim=2)  # (B, K, t+1)
        if att_history is not None:
            new_att = attention.reshape(B, K, 1, T_x)[rows.unsqueeze(1), beams]  # (B, K, 1, T_x)
            att_history = torch.cat([att_history[rows.unsqueeze(1), beams], new_att], dim=2)
        prev = words.view(-1)

    model.train(was_training)
    return _hypotheses(best_tokens, best_length, best_log_prob, alpha, best_att, src_lengths)
