"""What the ablations show (docs/ablations.md): pure functions over the scored test outputs of the
headline pair and its variants (no I/O; the `evaluate_ablations` stage writes what they return).

- **Seeds**: the headline pair with every training seed, one claim whose intervals include the
  training variance (``claim.pair_claim`` over (S, N, 10) statistics), "shown" only if each seed agrees.
- **Capacity**: RNNenc with c of several sizes. If the fixed length is the bottleneck, the source
  length at which its BLEU falls to half its 10–19 value (``half_bleu_length``) grows with |c|.
- **Controls**: each other RNNenc variant (source reversed, c from a bidirectional encoder,
  RNNsearch's parameter count) tested against the headline RNNsearch as the claim tests the pair:
  if its precision still falls, the fall is not the time lag or the parameter count.
- **Alignment**: both models on the reordered twin of the task (long-range moves): does attention
  still hold when the alignment is not near-diagonal?
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from pipeline.config import Variant
from pipeline.data.length_buckets import BUCKET_LABELS, BUCKET_WIDTH
from pipeline.evaluation.bleu_by_length import BucketScore
from pipeline.evaluation.claim import LONG, SHORT, pair_claim
from pipeline.evaluation.losses import KEEPS

HEADLINE = ("rnnenc-gru", "rnnsearch-gru")
SEED, CONTEXT = "train.seed", "model.context_size"


@dataclass(frozen=True)
class Scored:
    """One model's test output, scored: per-bucket BLEU and per-sentence sacrebleu statistics."""

    buckets: list[BucketScore]
    statistics: np.ndarray  # (N, 10)
    parameters: int


def half_bleu_length(buckets: Sequence[BucketScore]) -> Optional[float]:
    """Source length (words) where BLEU falls to half its 10–19 value, interpolated linearly between
    bucket midpoints; None when it stays above half in every longer bucket (or 10–19 has no BLEU)."""
    by_label = {b.bucket: b for b in buckets}
    start = BUCKET_LABELS.index(SHORT)
    if by_label.get(SHORT) is None or not by_label[SHORT].bleu:
        return None
    half = by_label[SHORT].bleu / 2
    previous_x, previous_bleu = start * BUCKET_WIDTH + BUCKET_WIDTH / 2, by_label[SHORT].bleu
    for index in range(start + 1, len(BUCKET_LABELS) - 1):  # the open last bucket has no midpoint
        row = by_label.get(BUCKET_LABELS[index])
        if row is None or row.bleu is None:
            continue
        x = index * BUCKET_WIDTH + BUCKET_WIDTH / 2
        if row.bleu <= half:
            return round(previous_x + (previous_bleu - half) / (previous_bleu - row.bleu) * (x - previous_x), 1)
        previous_x, previous_bleu = x, row.bleu
    return None


def seed_variants(variants: Mapping[str, Variant], model: str) -> dict[str, str]:
    """Variant name → its seed, for the variants of ``model`` on the controlled task that change only the seed."""
    return {name: str(v.settings[SEED]) for name, v in variants.items()
            if v.model == model and v.corpus == "synthetic" and set(v.settings) == {SEED}}


def capacity_variants(variants: Mapping[str, Variant]) -> dict[str, int]:
    """Variant name → |c|, for the headline RNNenc on the controlled task with only |c| changed."""
    return {name: int(v.settings[CONTEXT]) for name, v in variants.items()
            if v.model == HEADLINE[0] and v.corpus == "synthetic" and set(v.settings) == {CONTEXT}}


def control_variants(variants: Mapping[str, Variant]) -> list[str]:
    """The other RNNenc variants on the controlled task (lag, size, …): neither a seed nor a |c| variant."""
    plain = set(seed_variants(variants, HEADLINE[0])) | set(capacity_variants(variants))
    return [name for name, v in variants.items()
            if v.corpus == "synthetic" and v.model.startswith("rnnenc-") and name not in plain]


def source_order_runs(variants: Mapping[str, Variant]) -> list[str]:
    """The runs judged against the source-order translation as well: the headline RNNenc and the controls."""
    return [HEADLINE[0], *control_variants(variants)]


def reordered_pair(variants: Mapping[str, Variant]) -> Optional[tuple[str, str]]:
    """(RNNenc variant, RNNsearch variant) of one cell on the reordered task, the headline cell first."""
    on_task = {v.model: name for name, v in variants.items() if v.corpus == "reordered"}
    for cell in ["gru", *sorted({m.partition("-")[2] for m in on_task})]:
        if f"rnnenc-{cell}" in on_task and f"rnnsearch-{cell}" in on_task:
            return on_task[f"rnnenc-{cell}"], on_task[f"rnnsearch-{cell}"]
    return None


def summary(scored: Scored) -> dict:
    """One model's line of metrics.json: BLEU at 10–19 and 40–49, the half-BLEU length, parameters."""
    by_label = {b.bucket: b for b in scored.buckets}
    return {"parameters": scored.parameters, "bleu_10_19": by_label[SHORT].bleu, "bleu_40_49": by_label[LONG].bleu,
            "half_bleu_length": half_bleu_length(scored.buckets)}


def analyse(variants: Mapping[str, Variant], synthetic: Mapping[str, Scored], reordered: Mapping[str, Scored],
            buckets: np.ndarray, reordered_buckets: Optional[np.ndarray], headline_seed: int, headline_size: int,
            samples: int, seed: int, in_source_order: Mapping[str, Scored] = {}) -> dict:
    """metrics.json of the ablations. ``synthetic``/``reordered``: model or variant name → Scored on
    each test set (the headline pair under its model names); ``headline_size``: the headline |c|;
    ``in_source_order``: the controlled task's runs scored against the source-order translation."""
    enc, search = HEADLINE
    out: dict = {"models": {name: summary(s) for name, s in {**synthetic, **reordered}.items()}}
    seeds = {enc: seed_variants(variants, enc), search: seed_variants(variants, search)}
    count = min(len(seeds[enc]), len(seeds[search]))
    runs = {model: [model, *list(seeds[model])[:count]] for model in HEADLINE}
    names = [str(headline_seed), *list(seeds[enc].values())[:count]]
    stacked = {model: np.stack([synthetic[name].statistics for name in runs[model]]) for model in HEADLINE}
    out["seeds"] = pair_claim("gru", stacked[enc], stacked[search], buckets, samples, seed,
                              seed_names=names).metrics()
    sizes = {headline_size: enc, **{size: name for name, size in capacity_variants(variants).items()}}
    out["capacity"] = {str(size): {"model": name, "half_bleu_length": half_bleu_length(synthetic[name].buckets),
                                   "claim": _against_search(name, synthetic, buckets, samples, seed)}
                       for size, name in sorted(sizes.items())}
    out["capacity_grows"] = grows([entry["half_bleu_length"] for entry in out["capacity"].values()])
    out["controls"] = {name: _against_search(name, synthetic, buckets, samples, seed)
                       for name in control_variants(variants)}
    out["source_order"] = {name: source_order_entry(name, in_source_order, synthetic, buckets, samples, seed)
                           for name in source_order_runs(variants) if name in in_source_order}
    pair = reordered_pair(variants)
    out["reordered"] = None if pair is None or reordered_buckets is None else pair_claim(
        "gru", reordered[pair[0]].statistics, reordered[pair[1]].statistics, reordered_buckets, samples, seed,
        names=pair).metrics()
    return out


def _against_search(name: str, synthetic: Mapping[str, Scored], buckets: np.ndarray, samples: int,
                    seed: int) -> dict:
    """The claim's test of one RNNenc run against the headline RNNsearch (its own name in the verdict)."""
    return pair_claim("gru", synthetic[name].statistics, synthetic[HEADLINE[1]].statistics, buckets, samples, seed,
                      names=(name, HEADLINE[1])).metrics()


def source_order_entry(name: str, in_source_order: Mapping[str, Scored], synthetic: Mapping[str, Scored],
                       buckets: np.ndarray, samples: int, seed: int) -> dict:
    """One RNNenc run against the source-order translation: its BLEU at 10–19 and 40–49 and whether the
    order it learned is lost with length (r and what falls, from the claim's own test)."""
    claim = pair_claim("gru", in_source_order[name].statistics, synthetic[HEADLINE[1]].statistics, buckets, samples,
                       seed, names=(name, HEADLINE[1])).metrics()
    entry = {key: value for key, value in summary(in_source_order[name]).items() if key != "parameters"}
    entry.update({key: claim[key] for key in ("r_enc", "r_enc_low", "r_enc_high", "lost")})
    return entry


def grows(lengths: Sequence[Optional[float]]) -> Optional[bool]:
    """Whether half-BLEU lengths, by increasing |c|, never shrink and end longer than they start (None
    is beyond every bucket); None when there is nothing to compare: one size, or BLEU halves at none."""
    if len(lengths) < 2 or all(length is None for length in lengths):
        return None
    beyond = [float("inf") if length is None else length for length in lengths]
    return all(a <= b for a, b in zip(beyond, beyond[1:])) and beyond[0] < beyond[-1]


def falls(claim: dict) -> Optional[bool]:
    """Whether a run's precision falls from 10–19 to 40–49 with confidence (None: not tested)."""
    if claim.get("r_enc_high") is None:
        return None
    return claim["r_enc_high"] < KEEPS
