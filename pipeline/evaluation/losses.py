"""What a model loses from short to long sources, named from BLEU's parts (each judged on its interval).

BLEU = BP · (p1·p2·p3·p4)^¼ (Papineni et al. 2002 §2.3), so a fall of BLEU with source length has
four readings, and they call for different explanations:

- **words**: unigram precision p1 falls — the output holds words the reference does not (content lost);
- **word order**: p1 holds while 4-gram precision p4 falls — the right words in the wrong order (the
  fixed vector's signature in the controlled task: a bag of words survives in c, its order does not);
- **length**: the brevity penalty falls — the output stops early (length generalisation, not content);
- **over-generation**: the output is longer than the reference — it lowers every precision without
  losing content, so a precision fall that comes with it is not evidence of a bottleneck.

Ratios compare the long bucket with the short one (r_p1 = p1(long) / p1(short)); length is judged on
the long bucket itself (its BP and hyp/ref ratio). "Holds" and "falls" need the whole 95% interval
on one side of KEEPS; an interval across it decides nothing, and the diagnosis says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pipeline.evaluation.resampling import Interval, number

KEEPS = 0.85  # a ratio whose interval lies at or above this holds; below it, falls
BP_AT_LEAST = 0.9  # the long bucket's brevity penalty: an interval below it is a length loss
OVER_ABOVE = 1.1  # the long bucket's hyp/ref ratio: an interval above it is over-generation

WORDS, ORDER, LENGTH, OVER = "words", "word order", "length", "over-generation"
CONTENT = (WORDS, ORDER)


@dataclass(frozen=True)
class Parts:
    """The intervals the diagnosis reads, for one model from the short to the long bucket."""

    r_p1: Interval
    r_p4: Interval
    bp_long: Interval
    len_ratio_long: Interval


def lost(parts: Parts) -> list[str]:
    """What is lost, in the order WORDS, ORDER, LENGTH, OVER (empty: nothing shown to be lost)."""
    out = []
    if parts.r_p1.below(KEEPS):
        out.append(WORDS)
    elif parts.r_p1.at_least(KEEPS) and parts.r_p4.below(KEEPS):
        out.append(ORDER)
    if parts.bp_long.below(BP_AT_LEAST):
        out.append(LENGTH)
    if parts.len_ratio_long.low > OVER_ABOVE:
        out.append(OVER)
    return out


def describe(model: str, parts: Parts, losses: Optional[list[str]] = None) -> str:
    """One clause naming what ``model`` loses, with the intervals it rests on."""
    losses = lost(parts) if losses is None else losses
    p1, p4 = parts.r_p1.text("r_p1"), parts.r_p4.text("r_p4")
    clauses = []
    if WORDS in losses:
        clauses.append(f"words (its unigram precision falls: {p1})")
    if ORDER in losses:
        clauses.append(f"word order (its unigram precision holds, {p1}, while its 4-gram precision falls, {p4})")
    if LENGTH in losses:
        clauses.append(f"length (its brevity penalty at the long bucket falls: {parts.bp_long.text('BP')})")
    if OVER in losses:
        clauses.append(f"nothing of content for sure: it over-generates (hyp/ref {parts.len_ratio_long.text('ratio')}), "
                       "which lowers precision without losing words")
    if not clauses:
        return (f"{model} loses nothing measurable: r_p1 and r_p4 do not fall below {KEEPS:g} with confidence "
                f"({p1}; {p4}) and its length holds")
    length = ""
    if LENGTH not in losses and OVER not in losses:
        length = (f"; its length holds (hyp/ref {number(parts.len_ratio_long.value)}, BP "
                  f"{number(parts.bp_long.value)} at the long bucket)")
    return f"{model} loses " + " and ".join(clauses) + length
