"""The claim, tested: a fixed-length vector loses *content* as sources get longer, attention does not.

Pure functions over per-sentence sacrebleu statistics (no I/O); ``evaluate`` writes the result into
``metrics.json`` under ``"claim"`` and ``report`` renders it. For each decoder and each cell whose
pair ``rnnenc-<cell>`` / ``rnnsearch-<cell>`` was evaluated:

- r = P(40-49) / P(10-19), P = BLEU without the brevity penalty (``bleu_by_length.bleu_nobp``):
  how much n-gram precision a model keeps from short to long sources; r_enc for the fixed vector,
  r_search for attention, diff = r_search − r_enc.
- 95% paired bootstrap intervals of r_enc, r_search and diff: sentences are resampled with
  replacement within each of the two buckets, the same resample for both models, and every
  resample's ratios are recomputed from summed statistics (counts @ statistics, one matrix product
  per bucket). The resamples are exactly those of the per-bucket BLEU intervals of
  ``bleu_by_length.bucket_scores`` (same generator seeds), so the run is deterministic.
- "bottleneck shown" only when all four hold: (1) the fixed vector's precision falls (upper bound of
  r_enc < FALL_BELOW); (2) attention's holds (r_search ≥ HOLD_AT_LEAST); (3) the fixed vector's brevity
  penalty is ≥ BP_AT_LEAST in both buckets, so its fall is not brevity; (4) the diff interval lies
  above DIFF_ABOVE. Otherwise the verdict names, in words, every condition that failed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
from sacrebleu.metrics import BLEU

from pipeline.evaluation.bleu_by_length import bleu_from_statistics, bleu_nobp, make_bleu, resample_counts
from pipeline.data.length_buckets import BUCKET_LABELS

SHORT, LONG = "10-19", "40-49"  # the buckets the ratios compare (inside the training length limit of 50)
FALL_BELOW = 1.0  # (1) upper bound of r_enc's interval must be below this: the fixed vector loses precision
HOLD_AT_LEAST = 0.9  # (2) r_search at least this: attention keeps its precision
BP_AT_LEAST = 0.9  # (3) the fixed vector's brevity penalty in both buckets: its fall is not brevity
DIFF_ABOVE = 0.0  # (4) lower bound of diff's interval above this: attention keeps more than the fixed vector
CONFIDENCE = 95  # percent, of every interval
ENCODER, ATTENTION = "rnnenc", "rnnsearch"
DIGITS = 4  # metrics.json rounding
KEYS = ("r_enc", "r_enc_low", "r_enc_high", "r_search", "r_search_low", "r_search_high", "diff", "diff_low",
        "diff_high", "bp_enc_short", "bp_enc_long", "n_short", "n_long", "shown", "verdict")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def text(self) -> str:
        return f"r = {number(self.value)}, {CONFIDENCE}% CI {number(self.low)}–{number(self.high)}"


@dataclass(frozen=True)
class PairClaim:
    """The test of one cell's pair under one decoder; a pair that could not be tested has only a verdict."""

    cell: str
    verdict: str
    shown: bool = False
    r_enc: Optional[Interval] = None
    r_search: Optional[Interval] = None
    diff: Optional[Interval] = None
    bp_enc_short: Optional[float] = None
    bp_enc_long: Optional[float] = None
    n_short: int = 0
    n_long: int = 0

    def metrics(self) -> dict:
        """metrics.json's entry: every key always present (``dvc metrics diff`` lines up), floats rounded."""
        out: dict = {}
        for name in ("r_enc", "r_search", "diff"):
            interval = getattr(self, name)
            for suffix, field in (("", "value"), ("_low", "low"), ("_high", "high")):
                out[name + suffix] = None if interval is None else _round(getattr(interval, field))
        out.update(bp_enc_short=_round(self.bp_enc_short), bp_enc_long=_round(self.bp_enc_long),
                   n_short=self.n_short, n_long=self.n_long, shown=self.shown, verdict=self.verdict)
        return out


def _round(value: Optional[float]) -> Optional[float]:
    """Rounded to DIGITS; None for a missing or non-finite value (JSON has no infinity)."""
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


def number(value: Optional[float], digits: int = 2) -> str:
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
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return Interval(value, math.nan, math.nan)
    tail = (100 - CONFIDENCE) / 2
    method = "linear" if np.isfinite(samples).all() else "inverted_cdf"
    low, high = np.percentile(samples, [tail, 100 - tail], method=method)
    return Interval(value, float(low), float(high))


def _ratio(long: np.ndarray | float, short: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(np.asarray(long, dtype=float), np.asarray(short, dtype=float))


def _nobp_of_sums(metric: BLEU, sums: np.ndarray) -> np.ndarray:
    return np.array([bleu_nobp(bleu_from_statistics(metric, row)) for row in sums])


def pair_claim(cell: str, enc: Optional[np.ndarray], search: Optional[np.ndarray], buckets: np.ndarray,
               samples: int, seed: int, metric: Optional[BLEU] = None) -> PairClaim:
    """Test one pair from each model's (N, 10) sentence statistics (None: the model was not evaluated).

    ``buckets`` holds each sentence's index into BUCKET_LABELS; ``seed`` is evaluate's seed.
    """
    enc_name, search_name = f"{ENCODER}-{cell}", f"{ATTENTION}-{cell}"
    missing = [name for name, stats in ((enc_name, enc), (search_name, search)) if stats is None]
    if missing:
        return PairClaim(cell, f"not tested: {' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} "
                               f"not evaluated")
    metric = metric or make_bleu(lowercase=False)  # lowercasing acts on text, not on statistics
    buckets = np.asarray(buckets)
    index = {label: BUCKET_LABELS.index(label) for label in (SHORT, LONG)}
    rows = {label: np.flatnonzero(buckets == i) for label, i in index.items()}
    n_short, n_long = len(rows[SHORT]), len(rows[LONG])
    empty = [label for label in (SHORT, LONG) if len(rows[label]) == 0]
    if empty:
        return PairClaim(cell, f"not tested: no test sentence of {' or '.join(empty)} words", n_short=n_short,
                         n_long=n_long)
    point = {(name, label): bleu_from_statistics(metric, stats[rows[label]].sum(axis=0))
             for name, stats in ((enc_name, enc), (search_name, search)) for label in (SHORT, LONG)}
    zero = [name for name in (enc_name, search_name) if bleu_nobp(point[name, SHORT]) == 0]
    if zero:
        return PairClaim(cell, f"not tested: {' and '.join(zero)} {'has' if len(zero) == 1 else 'have'} no n-gram "
                               f"match at {SHORT} words (precision 0, no ratio)", n_short=n_short, n_long=n_long)
    # The same resample (counts) for both models: the pairing. Seeds as bucket_scores' per-bucket ones.
    counts = {label: resample_counts(len(rows[label]), samples, np.random.default_rng([seed, index[label]]))
              for label in (SHORT, LONG)}
    ratios, boot = {}, {}
    for name, stats in ((enc_name, enc), (search_name, search)):
        nobp = {label: _nobp_of_sums(metric, counts[label] @ stats[rows[label]]) for label in (SHORT, LONG)}
        boot[name] = _ratio(nobp[LONG], nobp[SHORT])
        ratios[name] = float(_ratio(bleu_nobp(point[name, LONG]), bleu_nobp(point[name, SHORT])))
    with np.errstate(invalid="ignore"):
        diff_samples = boot[search_name] - boot[enc_name]
    r_enc, r_search = (interval(boot[n], ratios[n]) for n in (enc_name, search_name))
    diff = interval(diff_samples, ratios[search_name] - ratios[enc_name])
    bp_short, bp_long = point[enc_name, SHORT].bp, point[enc_name, LONG].bp
    failures = failed_conditions(enc_name, search_name, r_enc, r_search, diff, bp_short, bp_long)
    if failures:
        verdict = "not shown: " + "; ".join(failures)
    else:
        verdict = (f"bottleneck shown: {enc_name}'s precision falls ({r_enc.text()}) while {search_name}'s holds "
                   f"({r_search.text()}); difference {number(diff.value)} ({CONFIDENCE}% CI {number(diff.low)}–"
                   f"{number(diff.high)}); {enc_name}'s brevity penalty is {number(bp_short)} at {SHORT} and "
                   f"{number(bp_long)} at {LONG}: the fall is content, not brevity")
    return PairClaim(cell, verdict, not failures, r_enc, r_search, diff, bp_short, bp_long, n_short, n_long)


def failed_conditions(enc_name: str, search_name: str, r_enc: Interval, r_search: Interval, diff: Interval,
                      bp_short: float, bp_long: float) -> list[str]:
    """Each failed condition of the claim, in words (empty: the bottleneck is shown)."""
    failures = []
    precision_falls = r_enc.high < FALL_BELOW
    if not precision_falls:
        failures.append(f"{enc_name}'s precision does not fall ({r_enc.text()})")
    if not r_search.value >= HOLD_AT_LEAST:
        failures.append(f"attention does not hold: {search_name}'s precision falls too (r = {number(r_search.value)} "
                        f"is below {HOLD_AT_LEAST}, {CONFIDENCE}% CI {number(r_search.low)}–{number(r_search.high)})")
    low_bp = [f"{label} ({number(bp)})" for label, bp in ((SHORT, bp_short), (LONG, bp_long)) if bp < BP_AT_LEAST]
    if low_bp:
        failures.append(f"{enc_name}'s brevity penalty is below {BP_AT_LEAST} at {' and '.join(low_bp)}: "
                        f"{'part of ' if precision_falls else ''}the fall is brevity")
    if not diff.low > DIFF_ABOVE:
        where = ("lies below {0:g}: attention keeps less of its precision than the fixed vector"
                 if diff.high < DIFF_ABOVE else "includes {0:g}").format(DIFF_ABOVE)
        failures.append(f"the {CONFIDENCE}% interval of the difference r_search − r_enc {where} "
                        f"(diff = {number(diff.value)}, {CONFIDENCE}% CI {number(diff.low)}–{number(diff.high)})")
    return failures


def cells(models) -> list[str]:
    """Cells with an rnnenc or rnnsearch model among ``models``, in order of first appearance."""
    out: list[str] = []
    for name in models:
        family, _, cell = name.partition("-")
        if family in (ENCODER, ATTENTION) and cell not in out:
            out.append(cell)
    return out


def judge(statistics: Mapping[str, Mapping[str, np.ndarray]], buckets: np.ndarray, samples: int, seed: int,
          metric: Optional[BLEU] = None) -> dict[str, dict[str, dict]]:
    """metrics.json's ``"claim"``: decoder → cell → PairClaim.metrics(), from decoder → model → statistics."""
    return {decoder: {cell: pair_claim(cell, by_model.get(f"{ENCODER}-{cell}"), by_model.get(f"{ATTENTION}-{cell}"),
                                       buckets, samples, seed, metric).metrics()
                      for cell in cells(by_model)}
            for decoder, by_model in statistics.items()}
