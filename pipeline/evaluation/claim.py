"""The claim, tested: a fixed-length vector loses *content* as sources get longer, attention does not.

Pure functions over per-sentence sacrebleu statistics (no I/O); ``evaluate`` writes the result into
``metrics.json`` under ``"claim"`` and ``report`` renders it. For each decoder and each cell whose
pair ``rnnenc-<cell>`` / ``rnnsearch-<cell>`` was evaluated:

- r = P(40-49) / P(10-19), P = BLEU without the brevity penalty (``bleu_by_length.bleu_nobp``):
  how much n-gram precision a model keeps from short to long sources; r_enc for the fixed vector,
  r_search for attention, diff = r_search − r_enc.
- 95% intervals from a two-stage bootstrap (``resampling``): training seeds with replacement, then
  sentences with replacement within each bucket, the same sentence resample for both models (paired).
  With one seed they are exactly the resamples of the per-bucket BLEU intervals, so the run is
  deterministic.
- "bottleneck shown" only when all four hold, each on its interval: (1) the fixed vector's precision
  falls (r_enc's interval below KEEPS); (2) attention's holds (r_search's at or above KEEPS); (3) the
  difference's interval lies above DIFF_ABOVE; (4) what the fixed vector loses is content — words or
  word order — and not over-generation (``losses``). With several seeds the claim must also hold on
  each seed's pair alone. Otherwise the verdict names, in words, every condition that failed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.evaluation import resampling as rs
from pipeline.evaluation.bleu_by_length import make_bleu, resample_counts
from pipeline.evaluation.losses import CONTENT, KEEPS, OVER, Parts, describe, lost
from pipeline.evaluation.resampling import CONFIDENCE, Interval, number

SHORT, LONG = "10-19", "40-49"  # the buckets the ratios compare (inside the training length limit of 50)
DIFF_ABOVE = 0.0  # (3) lower bound of diff's interval above this: attention keeps more than the fixed vector
ENCODER, ATTENTION = "rnnenc", "rnnsearch"
DIGITS = 4  # metrics.json rounding
INTERVALS = ("r_enc", "r_search", "diff", "r_p1_enc", "r_p4_enc", "bp_enc_long", "len_ratio_enc_long")
KEYS = (*(f"{name}{suffix}" for name in INTERVALS for suffix in ("", "_low", "_high")), "bp_enc_short", "n_short",
        "n_long", "seeds", "lost", "shown", "verdict", "per_seed")


@dataclass(frozen=True)
class PairClaim:
    """The test of one cell's pair under one decoder; a pair that could not be tested has only a verdict."""

    cell: str
    verdict: str
    shown: bool = False
    r_enc: Optional[Interval] = None
    r_search: Optional[Interval] = None
    diff: Optional[Interval] = None
    parts: Optional[Parts] = None  # what the fixed vector loses (losses.Parts)
    bp_enc_short: Optional[float] = None
    n_short: int = 0
    n_long: int = 0
    seeds: int = 0
    lost: tuple[str, ...] = ()
    per_seed: dict[str, "PairClaim"] = field(default_factory=dict)

    def intervals(self) -> dict[str, Optional[Interval]]:
        parts = self.parts
        return {"r_enc": self.r_enc, "r_search": self.r_search, "diff": self.diff,
                "r_p1_enc": parts and parts.r_p1, "r_p4_enc": parts and parts.r_p4,
                "bp_enc_long": parts and parts.bp_long, "len_ratio_enc_long": parts and parts.len_ratio_long}

    def metrics(self) -> dict:
        """metrics.json's entry: every key always present (``dvc metrics diff`` lines up), floats rounded."""
        out: dict = {}
        for name, found in self.intervals().items():
            for suffix, attribute in (("", "value"), ("_low", "low"), ("_high", "high")):
                out[name + suffix] = None if found is None else _round(getattr(found, attribute))
        out.update(bp_enc_short=_round(self.bp_enc_short), n_short=self.n_short, n_long=self.n_long,
                   seeds=self.seeds, lost=" and ".join(self.lost) or "nothing", shown=self.shown,
                   verdict=self.verdict,
                   per_seed={name: {"r_enc": _round(c.r_enc and c.r_enc.value),
                                    "r_search": _round(c.r_search and c.r_search.value),
                                    "diff": _round(c.diff and c.diff.value), "lost": " and ".join(c.lost) or "nothing",
                                    "shown": c.shown} for name, c in self.per_seed.items()})
        return out


def _round(value: Optional[float]) -> Optional[float]:
    """Rounded to DIGITS; None for a missing or non-finite value (JSON has no infinity)."""
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


def pair_claim(cell: str, enc: Optional[np.ndarray], search: Optional[np.ndarray], buckets: np.ndarray,
               samples: int, seed: int, metric: Optional[BLEU] = None,
               seed_names: Optional[Sequence[str]] = None, names: Optional[tuple[str, str]] = None) -> PairClaim:
    """Test one pair from each model's statistics: (N, 10) for one training seed, (S, N, 10) for S seeds
    (None: the model was not evaluated).

    ``buckets`` holds each sentence's index into BUCKET_LABELS; ``seed`` is evaluate's seed;
    ``seed_names`` label the training seeds in ``per_seed`` (default 1..S); ``names`` the two models in
    the verdict (default rnnenc-<cell>, rnnsearch-<cell>).
    """
    enc_name, search_name = names or (f"{ENCODER}-{cell}", f"{ATTENTION}-{cell}")
    missing = [name for name, stats in ((enc_name, enc), (search_name, search)) if stats is None]
    if missing:
        return PairClaim(cell, f"not tested: {' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} "
                               f"not evaluated")
    metric = metric or make_bleu(lowercase=False)  # lowercasing acts on text, not on statistics
    stats = {enc_name: rs.as_seeds(enc), search_name: rs.as_seeds(search)}
    buckets = np.asarray(buckets)
    index = {label: BUCKET_LABELS.index(label) for label in (SHORT, LONG)}
    rows = {label: np.flatnonzero(buckets == i) for label, i in index.items()}
    n_short, n_long = len(rows[SHORT]), len(rows[LONG])
    seeds = min(len(s) for s in stats.values())
    empty = [label for label in (SHORT, LONG) if len(rows[label]) == 0]
    if empty:
        return PairClaim(cell, f"not tested: no test sentence of {' or '.join(empty)} words", n_short=n_short,
                         n_long=n_long, seeds=seeds)
    point = {(name, label): s[:, rows[label]].sum(axis=(0, 1)) for name, s in stats.items() for label in rows}
    zero = [name for name in stats if rs.nobp(metric, point[name, SHORT])[0] == 0]
    if zero:
        return PairClaim(cell, f"not tested: {' and '.join(zero)} {'has' if len(zero) == 1 else 'have'} no n-gram "
                               f"match at {SHORT} words (precision 0, no ratio)", n_short=n_short, n_long=n_long,
                         seeds=seeds)
    # The same sentence resample for both models (the pairing), seeded as bucket_scores' per-bucket ones;
    # each model draws its own seeds (their training runs are independent).
    counts = {label: resample_counts(len(rows[label]), samples, np.random.default_rng([seed, index[label]]))
              for label in rows}
    sums = {}
    for k, (name, s) in enumerate(stats.items()):
        weights = rs.seed_counts(len(s), samples, np.random.default_rng([seed, len(BUCKET_LABELS) + k]))
        for label in rows:
            sums[name, label] = rs.resampled_sums(s, rows[label], counts[label], weights)

    def ratio_of(name: str, measure) -> Interval:
        value = float(rs.ratio(measure(point[name, LONG]), measure(point[name, SHORT]))[0])
        return rs.interval(rs.ratio(measure(sums[name, LONG]), measure(sums[name, SHORT])), value)

    def nobp(summed: np.ndarray) -> np.ndarray:
        return rs.nobp(metric, summed)

    r_enc, r_search = ratio_of(enc_name, nobp), ratio_of(search_name, nobp)
    boot_enc = rs.ratio(nobp(sums[enc_name, LONG]), nobp(sums[enc_name, SHORT]))
    boot_search = rs.ratio(nobp(sums[search_name, LONG]), nobp(sums[search_name, SHORT]))
    with np.errstate(invalid="ignore"):
        diff = rs.interval(boot_search - boot_enc, r_search.value - r_enc.value)
    at_long = {measure: rs.interval(measure(sums[enc_name, LONG]), float(measure(point[enc_name, LONG])[0]))
               for measure in (rs.brevity_penalty, rs.length_ratio)}
    parts = Parts(ratio_of(enc_name, lambda s: rs.precision(s, 1)), ratio_of(enc_name, lambda s: rs.precision(s, 4)),
                  at_long[rs.brevity_penalty], at_long[rs.length_ratio])
    losses = lost(parts)
    per_seed = {}
    if seeds > 1:
        labels = list(seed_names) if seed_names else [str(i + 1) for i in range(seeds)]
        per_seed = {labels[i]: pair_claim(cell, stats[enc_name][i], stats[search_name][i], buckets, samples, seed,
                                          metric, names=(enc_name, search_name)) for i in range(seeds)}
    failures = failed_conditions(enc_name, search_name, r_enc, r_search, diff, losses, per_seed)
    loses = describe(enc_name, parts, losses)
    if failures:
        verdict = "not shown: " + "; ".join(failures) + f". {loses}"
    else:
        across = f" on each of {seeds} training seeds and pooled" if seeds > 1 else ""
        verdict = (f"bottleneck shown{across}: {enc_name}'s precision falls ({r_enc.text()}) while {search_name}'s "
                   f"holds ({r_search.text()}); difference {number(diff.value)} ({CONFIDENCE}% CI {number(diff.low)}–"
                   f"{number(diff.high)}); {loses}")
    return PairClaim(cell, verdict, not failures, r_enc, r_search, diff, parts,
                     float(rs.brevity_penalty(point[enc_name, SHORT])[0]), n_short, n_long, seeds, tuple(losses),
                     per_seed)


def failed_conditions(enc_name: str, search_name: str, r_enc: Interval, r_search: Interval, diff: Interval,
                      losses: Sequence[str], per_seed: Mapping[str, PairClaim]) -> list[str]:
    """Each failed condition of the claim, in words (empty: the bottleneck is shown)."""
    failures = []
    if not r_enc.below(KEEPS):
        failures.append(f"{enc_name}'s precision does not fall below {KEEPS:g} with confidence ({r_enc.text()})")
    if not r_search.at_least(KEEPS):
        failures.append(f"attention does not hold: {search_name}'s precision is not at least {KEEPS:g} with "
                        f"confidence ({r_search.text()})")
    if not diff.low > DIFF_ABOVE:
        where = ("lies below {0:g}: attention keeps less of its precision than the fixed vector"
                 if diff.high < DIFF_ABOVE else "includes {0:g}").format(DIFF_ABOVE)
        failures.append(f"the {CONFIDENCE}% interval of the difference r_search − r_enc {where} "
                        f"(diff = {number(diff.value)}, {CONFIDENCE}% CI {number(diff.low)}–{number(diff.high)})")
    if OVER in losses:
        failures.append(f"{enc_name} over-generates at {LONG} words, so its precision may fall without losing content")
    elif not any(loss in CONTENT for loss in losses):
        failures.append(f"no loss of content is shown for {enc_name} (neither its words nor their order)")
    against = [name for name, claim in per_seed.items() if not claim.shown]
    if against:
        failures.append(f"the seeds disagree: not shown on seed{'s' if len(against) > 1 else ''} "
                        f"{', '.join(against)} of {len(per_seed)}")
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
          metric: Optional[BLEU] = None, seed_names: Optional[Sequence[str]] = None) -> dict[str, dict[str, dict]]:
    """metrics.json's ``"claim"``: decoder → cell → PairClaim.metrics(), from decoder → model → statistics
    ((N, 10), or (S, N, 10) for S training seeds)."""
    return {decoder: {cell: pair_claim(cell, by_model.get(f"{ENCODER}-{cell}"), by_model.get(f"{ATTENTION}-{cell}"),
                                       buckets, samples, seed, metric, seed_names).metrics()
                      for cell in cells(by_model)}
            for decoder, by_model in statistics.items()}
