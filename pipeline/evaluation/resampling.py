"""The bootstrap behind the claim's intervals: resample training seeds, then test sentences.

A model trained with S seeds has (S, N, 10) sacrebleu statistics on the N test sentences (rows
[hyp_len, ref_len, correct_1..4, total_1..4]). One resample draws S seeds with replacement (the
training variance) and, independently, the sentences of a bucket with replacement (the test-set
variance); its statistics are the drawn seeds' sums over the drawn sentences. Both draws are
multinomial counts, so all resamples are two matrix products (Davison & Hinkley 1997 §3.8, the
two-stage bootstrap for hierarchical data). With one seed the seed draw is the identity and the
resamples are exactly those of ``bleu_by_length.bucket_scores`` (same sentence counts).

Everything a claim condition reads is a function of summed statistics, computed here for every
resample at once: ``nobp`` (BLEU without its brevity penalty, sacrebleu's smoothing), the raw
precisions ``p1``/``p4``, the length ratio hyp/ref and the brevity penalty.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU

from pipeline.evaluation.bleu_by_length import NGRAM_ORDER, bleu_from_statistics, bleu_nobp

HYP_LEN, REF_LEN, CORRECT, TOTAL = 0, 1, 2, 2 + NGRAM_ORDER  # columns of a statistics row
CONFIDENCE = 95  # percent, of every interval


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def below(self, threshold: float) -> bool:
        """The whole interval lies below ``threshold``."""
        return self.high < threshold

    def at_least(self, threshold: float) -> bool:
        """The whole interval lies at or above ``threshold``."""
        return self.low >= threshold

    def text(self, name: str = "r") -> str:
        return f"{name} = {number(self.value)}, {CONFIDENCE}% CI {number(self.low)}–{number(self.high)}"


def number(value: float | None, digits: int = 2) -> str:
    """A ratio for a sentence: 0.97, −0.05 (a real minus sign: "−0.05–0.30" stays readable), ∞."""
    if value is None or math.isnan(value):
        return "?"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}".replace("-", "−")


def interval(samples: np.ndarray, value: float) -> Interval:
    """The percentile interval of bootstrap ``samples`` around ``value``.

    A resample whose short-bucket precision is 0 gives an infinite ratio (nan for 0/0, dropped);
    then the bounds are order statistics rather than interpolations, which stay defined.
    """
    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return Interval(value, math.nan, math.nan)
    tail = (100 - CONFIDENCE) / 2
    method = "linear" if np.isfinite(samples).all() else "inverted_cdf"
    low, high = np.percentile(samples, [tail, 100 - tail], method=method)
    return Interval(value, float(low), float(high))


def as_seeds(statistics: np.ndarray) -> np.ndarray:
    """(S, N, 10) from one model's (N, 10) statistics (one seed) or (S, N, 10) (S seeds)."""
    statistics = np.asarray(statistics, dtype=np.int64)
    return statistics[None] if statistics.ndim == 2 else statistics


def seed_counts(seeds: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, seeds) multinomial counts of seeds drawn with replacement; all ones for one seed."""
    if seeds == 1:
        return np.ones((samples, 1), dtype=np.int64)
    return rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=samples)


def resampled_sums(statistics: np.ndarray, rows: np.ndarray, sentence_counts: np.ndarray,
                   seed_weights: np.ndarray) -> np.ndarray:
    """(samples, 10): each resample's statistics, Σ_s seed_weights[b, s] · sentence_counts[b] @ stats[s, rows].

    statistics (S, N, 10); rows (n,) indices of one bucket; sentence_counts (samples, n); seed_weights
    (samples, S).
    """
    per_seed = np.einsum("bn,snf->bsf", sentence_counts, statistics[:, rows])  # (samples, S, 10)
    return np.einsum("bs,bsf->bf", seed_weights, per_seed)


def nobp(metric: BLEU, sums: np.ndarray) -> np.ndarray:
    """BLEU / BP of each row of summed statistics (sacrebleu's smoothing), in [0, 100]."""
    sums = np.atleast_2d(sums)
    return np.array([bleu_nobp(bleu_from_statistics(metric, row)) for row in sums])


def precision(sums: np.ndarray, order: int) -> np.ndarray:
    """Raw (unsmoothed) n-gram precision of each row: matched / hypothesis n-grams (nan for none)."""
    sums = np.atleast_2d(sums).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[:, CORRECT + order - 1] / sums[:, TOTAL + order - 1]


def length_ratio(sums: np.ndarray) -> np.ndarray:
    """hyp_len / ref_len of each row: below 1 the output is short, above 1 it over-generates."""
    sums = np.atleast_2d(sums).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[:, HYP_LEN] / sums[:, REF_LEN]


def brevity_penalty(sums: np.ndarray) -> np.ndarray:
    """BLEU's BP of each row: exp(1 − ref/hyp) for short output, 1 otherwise (0 for empty output)."""
    ratio = length_ratio(sums)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bp = np.where(ratio >= 1, 1.0, np.exp(1 - 1 / ratio))
    return np.where(ratio > 0, bp, 0.0)


def ratio(long: np.ndarray | float, short: np.ndarray | float) -> np.ndarray:
    """long / short elementwise (inf or nan where short is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(np.asarray(long, dtype=float), np.asarray(short, dtype=float))
