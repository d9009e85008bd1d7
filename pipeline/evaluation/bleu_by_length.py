"""BLEU overall, per source-length bucket and on the no-UNK subset: pure functions over strings.

The protocol of docs/evaluation.md, after Bahdanau et al. 2014 (arXiv 1409.0473): Fig. 2 plots BLEU against
source sentence length, Table 1 reports BLEU on all test sentences and on those with no unknown
word ("No UNK"); Cho et al. 2014 (arXiv 1409.1259) Fig. 4 shows the same fall with length.

Every score is sacrebleu's corpus BLEU on detokenized text, with its signature. Per bucket we also
keep BLEU's parts, because a fall with length has two readings: the n-gram precisions fall (the
fixed-length vector lost the content: the bottleneck) or the brevity penalty falls (the model stops
early on sentences longer than any it trained on: length generalisation). ``bleu_nobp`` is BLEU
without its brevity penalty, BLEU / BP: the geometric mean of p1..p4 with sacrebleu's smoothing.

Speed: sacrebleu's sufficient statistics (hypothesis and reference length, matched and total
n-grams for n = 1..4) are extracted once per sentence; any subset's corpus BLEU is the library's
formula over the subset's summed rows, so a bucket's 1000 bootstrap resamples are one matrix
product. This uses two private methods of ``sacrebleu.metrics.BLEU`` (2.6.0, pinned):
``_extract_corpus_statistics`` and ``_compute_score_from_stats``; ``corpus_score`` is built on them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np
from sacrebleu.metrics import BLEU
from sacrebleu.metrics.bleu import BLEUScore

from models.special_tokens import UNK
from pipeline.data.length_buckets import BUCKET_LABELS

NGRAM_ORDER = 4  # sacrebleu's default, as in the papers
# One row per model × decoder ("greedy" / "beam") × bucket.
CSV_COLUMNS = ("model", "decoder", "bucket", "n", "bleu", "ci_low", "ci_high", "bleu_nobp", "bp", "len_ratio",
               "p1", "p2", "p3", "p4")


@dataclass(frozen=True)
class BucketScore:
    """One row of ``bleu_by_length.csv``; an empty bucket has n = 0 and every value None."""

    bucket: str
    n: int
    bleu: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    bleu_nobp: Optional[float] = None
    bp: Optional[float] = None
    len_ratio: Optional[float] = None
    p1: Optional[float] = None
    p2: Optional[float] = None
    p3: Optional[float] = None
    p4: Optional[float] = None

    def row(self, model: str, decoder: str) -> dict:
        return {"model": model, "decoder": decoder, **asdict(self)}


@dataclass(frozen=True)
class ModelScores:
    """What ``evaluate`` keeps of one translation model's test output."""

    bleu: float
    bleu_no_unk: Optional[float]  # None when no test sentence is free of unknown words
    bleu_multi_ref: float
    signature: str
    signature_multi_ref: str
    n: int
    no_unk_n: int
    buckets: list[BucketScore]
    # (n, 10) sufficient statistics against the main reference, one row per sentence (pipeline.evaluation.claim)
    statistics: np.ndarray = field(default_factory=lambda: np.zeros((0, 2 + 2 * NGRAM_ORDER), dtype=np.int64),
                                   repr=False, compare=False)

    def metrics(self) -> dict:
        """metrics.json's entry: fixed key order, floats rounded (DVC diffs stay readable)."""
        return {"bleu": _round(self.bleu, 2), "bleu_no_unk": _round(self.bleu_no_unk, 2),
                "bleu_multi_ref": _round(self.bleu_multi_ref, 2), "signature": self.signature,
                "signature_multi_ref": self.signature_multi_ref, "n": self.n, "no_unk_n": self.no_unk_n}


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def make_bleu(lowercase: bool) -> BLEU:
    """sacrebleu's default BLEU (13a tokenizer, exp smoothing); lowercase as the corpus was prepared."""
    return BLEU(lowercase=lowercase)


def sentence_statistics(metric: BLEU, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(N, 2 + 2·4) int64 rows [hyp_len, ref_len, correct_1..4, total_1..4], one per sentence.

    ``references`` is sacrebleu's layout: a list of reference streams, each with N lines. With
    several streams a row holds the clipped counts against all of them (sacrebleu's multi-reference
    BLEU), so sums of rows give exactly ``corpus_score`` of the subset.
    """
    if not hypotheses:
        return np.zeros((0, 2 + 2 * NGRAM_ORDER), dtype=np.int64)
    return np.asarray(metric._extract_corpus_statistics(list(hypotheses), [list(r) for r in references]),
                      dtype=np.int64)


def bleu_from_statistics(metric: BLEU, summed: np.ndarray) -> BLEUScore:
    """sacrebleu's corpus BLEU (smoothing and all) from summed statistics rows."""
    return metric._compute_score_from_stats([int(x) for x in summed])


def bleu_nobp(score: BLEUScore) -> float:
    """BLEU without the brevity penalty, BLEU / BP: the geometric mean of the (smoothed) precisions."""
    return score.score / score.bp if score.bp > 0 else 0.0


def resample_counts(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, n) multinomial counts: how often each of n rows is drawn in each resample (with replacement)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=samples)


def bootstrap_interval(metric: BLEU, statistics: np.ndarray, samples: int,
                       rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of corpus BLEU over ``samples`` resamples of the rows (with replacement).

    Each resample is a row of multinomial counts (how often each sentence was drawn): counts @
    statistics sums all resamples at once instead of building ``samples`` subsets.
    """
    counts = resample_counts(len(statistics), samples, rng)  # (samples, n)
    sums = counts @ statistics  # (samples, 10)
    scores = np.array([bleu_from_statistics(metric, row).score for row in sums])
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def bucket_scores(metric: BLEU, statistics: np.ndarray, buckets: np.ndarray, samples: int,
                  seed: int) -> list[BucketScore]:
    """One BucketScore per label of BUCKET_LABELS, in order; ``buckets`` holds each sentence's index.

    The generator is seeded per bucket (not per model): two models scored on the same test set draw
    the same resamples, so their intervals are paired and do not depend on evaluation order.
    """
    buckets = np.asarray(buckets)
    out = []
    for index, label in enumerate(BUCKET_LABELS):
        rows = statistics[buckets == index]
        if len(rows) == 0:
            out.append(BucketScore(label, 0))
            continue
        score = bleu_from_statistics(metric, rows.sum(axis=0))
        low, high = bootstrap_interval(metric, rows, samples, np.random.default_rng([seed, index]))
        p1, p2, p3, p4 = (_round(p, 2) for p in score.precisions)
        out.append(BucketScore(label, len(rows), _round(score.score, 2), _round(low, 2), _round(high, 2),
                               _round(bleu_nobp(score), 2), _round(score.bp, 4),
                               _round(score.sys_len / max(score.ref_len, 1), 4), p1, p2, p3, p4))
    return out


def no_unk_mask(src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray]) -> np.ndarray:
    """True for sentences whose source and reference hold no out-of-vocabulary word (Table 1, "No UNK")."""
    return np.array([not (np.any(s == UNK) or np.any(t == UNK)) for s, t in zip(src_ids, tgt_ids)], dtype=bool)


def score_model(hypotheses: Sequence[str], references: Sequence[Sequence[str]], buckets: np.ndarray,
                no_unk: np.ndarray, lowercase: bool, samples: int, seed: int) -> ModelScores:
    """Everything evaluate reports for one model. ``references[0]`` is the main reference."""
    hypotheses = list(hypotheses)
    single = make_bleu(lowercase)
    overall = single.corpus_score(hypotheses, [references[0]])  # public API: sets the signature
    statistics = sentence_statistics(single, hypotheses, [references[0]])
    no_unk = np.asarray(no_unk, dtype=bool)
    no_unk_bleu = bleu_from_statistics(single, statistics[no_unk].sum(axis=0)).score if no_unk.any() else None
    multi = make_bleu(lowercase)
    multi_score = multi.corpus_score(hypotheses, [list(r) for r in references])
    return ModelScores(
        bleu=overall.score, bleu_no_unk=no_unk_bleu, bleu_multi_ref=multi_score.score,
        signature=single.get_signature().format(), signature_multi_ref=multi.get_signature().format(),
        n=len(hypotheses), no_unk_n=int(no_unk.sum()),
        buckets=bucket_scores(single, statistics, buckets, samples, seed), statistics=statistics,
    )
