"""What the ablations conclude (pipeline/evaluation/ablations.py, pipeline/reporting/ablations.py), on
hand-made per-bucket scores and sacrebleu statistics: the conclusions follow the numbers, for the
claim and against it."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import Variant
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.evaluation import ablations
from pipeline.evaluation.bleu_by_length import BucketScore
from tests.pipeline.evaluation.test_claim import HOLDS, experiment, spec

SAMPLES, SEED = 100, 1234


def buckets_of(bleu_by_bucket: dict[str, float]) -> list[BucketScore]:
    return [BucketScore(label, 10, bleu_by_bucket.get(label)) if label in bleu_by_bucket else BucketScore(label, 0)
            for label in BUCKET_LABELS]


@pytest.mark.parametrize("bleu, expected", [
    ({"10-19": 60, "20-29": 50, "30-39": 20}, 25 + 10 * (50 - 30) / (50 - 20)),  # between 25 and 35 words
    ({"10-19": 60, "20-29": 30}, 25.0),  # exactly half at a midpoint
    ({"10-19": 60, "20-29": 55, "30-39": 50, "40-49": 45, "50-59": 40, "60+": 1}, None),  # never half (60+ is open)
    ({"10-19": 60, "30-39": 20}, 15 + 20 * (60 - 30) / (60 - 20)),  # an empty bucket is skipped
    ({"20-29": 10}, None),  # no BLEU at 10-19: nothing to halve
])
def test_half_bleu_length(bleu, expected):
    found = ablations.half_bleu_length(buckets_of(bleu))
    assert found == (None if expected is None else pytest.approx(expected, abs=0.05))


VARIANTS = {name: Variant(**spec_) for name, spec_ in {
    "rnnenc-gru-seed2": dict(model="rnnenc-gru", corpus="synthetic", settings={"train.seed": 2}),
    "rnnsearch-gru-seed2": dict(model="rnnsearch-gru", corpus="synthetic", settings={"train.seed": 2}),
    "rnnenc-gru-c8": dict(model="rnnenc-gru", corpus="synthetic", settings={"model.context_size": 8}),
    "rnnenc-gru-c64": dict(model="rnnenc-gru", corpus="synthetic", settings={"model.context_size": 64}),
    "rnnenc-gru-reversed": dict(model="rnnenc-gru", corpus="synthetic", settings={"model.reverse_source": True}),
    "rnnenc-gru-reordered": dict(model="rnnenc-gru", corpus="reordered", settings={}),
    "rnnsearch-gru-reordered": dict(model="rnnsearch-gru", corpus="reordered", settings={}),
}.items()}


@pytest.mark.parametrize("lengths, expected", [
    ([25.0, 35.0, 45.0], True), ([25.0, 25.0, None], True), ([45.0, 25.0, 35.0], False), ([25.0, 25.0], False),
    ([None, 30.0], False), ([None, None], None), ([30.0], None),
])
def test_half_bleu_length_grows_with_c(lengths, expected):
    assert ablations.grows(lengths) is expected


def test_variants_are_grouped_by_what_they_change():
    assert ablations.seed_variants(VARIANTS, "rnnenc-gru") == {"rnnenc-gru-seed2": "2"}
    assert ablations.capacity_variants(VARIANTS) == {"rnnenc-gru-c8": 8, "rnnenc-gru-c64": 64}
    assert ablations.control_variants(VARIANTS) == ["rnnenc-gru-reversed"]
    assert ablations.reordered_pair(VARIANTS) == ("rnnenc-gru-reordered", "rnnsearch-gru-reordered")


def scored(stats: np.ndarray, bleu: dict[str, float], parameters: int = 1000) -> ablations.Scored:
    return ablations.Scored(buckets_of(bleu), stats, parameters)


def run_analysis(reversed_falls: bool, capacity_grows: bool, attention_holds_reordered: bool,
                 in_source_order: dict | None = None):
    words = (ablations_spec := (spec(0.6, 15), spec(0.3, 45), *HOLDS))
    enc, search, buckets = experiment(*words)
    flat_enc, _, _ = experiment(spec(0.6, 15), spec(0.6, 45), *HOLDS, seed=5)
    falling = (spec(0.6, 15), spec(0.3, 45), spec(0.8, 15), spec(0.4, 45))
    r_enc, r_search, _ = experiment(*(ablations_spec if attention_holds_reordered else falling), seed=7)
    halves = {8: 25.0, 64: 35.0, 256: 45.0} if capacity_grows else {8: 45.0, 64: 25.0, 256: 35.0}

    def at(half: float) -> dict[str, float]:  # BLEU 60 at 10-19, exactly half at ``half`` words
        return {"10-19": 60.0, BUCKET_LABELS[int(half // 10)]: 30.0}

    synthetic = {"rnnenc-gru": scored(enc, at(halves[256])), "rnnsearch-gru": scored(search, {"10-19": 80.0}),
                 "rnnenc-gru-seed2": scored(enc, at(35.0)), "rnnsearch-gru-seed2": scored(search, {"10-19": 80.0}),
                 "rnnenc-gru-c8": scored(enc, at(halves[8])), "rnnenc-gru-c64": scored(enc, at(halves[64])),
                 "rnnenc-gru-reversed": scored(enc if reversed_falls else flat_enc, at(35.0))}
    reordered = {"rnnenc-gru-reordered": scored(r_enc, at(25.0)), "rnnsearch-gru-reordered": scored(r_search, {})}
    return ablations.analyse(VARIANTS, synthetic, reordered, buckets, buckets, 1234, 256, SAMPLES, SEED,
                             in_source_order or {})


def test_analysis_and_report_for_the_claim(tmp_path, monkeypatch):
    metrics = run_analysis(reversed_falls=True, capacity_grows=True, attention_holds_reordered=True)
    assert metrics["seeds"]["seeds"] == 2 and metrics["seeds"]["shown"]
    assert list(metrics["seeds"]["per_seed"]) == ["1234", "2"]
    assert list(metrics["capacity"]) == ["8", "64", "256"] and metrics["capacity_grows"] is True
    assert [e["half_bleu_length"] for e in metrics["capacity"].values()] == [25.0, 35.0, 45.0]
    assert ablations.falls(metrics["controls"]["rnnenc-gru-reversed"]) is True
    assert "rnnenc-gru-reversed's precision falls" in metrics["controls"]["rnnenc-gru-reversed"]["verdict"]
    assert metrics["reordered"]["shown"] and "rnnenc-gru-reordered" in metrics["reordered"]["verdict"]
    text = render(metrics, tmp_path, monkeypatch)
    for words in ("## Training variance", "bottleneck shown on each of 2 training seeds", "grows with |c|",
                  "does not come from what this control removes", "Attention still holds",
                  "| `rnnenc-gru-reversed` | model.reverse_source=True |"):
        assert words in text, words


def test_analysis_and_report_against_the_claim(tmp_path, monkeypatch):
    metrics = run_analysis(reversed_falls=False, capacity_grows=False, attention_holds_reordered=False)
    assert metrics["capacity_grows"] is False
    assert ablations.falls(metrics["controls"]["rnnenc-gru-reversed"]) is False
    assert not metrics["reordered"]["shown"]
    text = render(metrics, tmp_path, monkeypatch)
    for words in ("does **not** grow with |c|", "part of the headline fall comes from what this control removes",
                  "Attention does **not** hold its precision here"):
        assert words in text, words
    assert "grows with |c| (" not in text and "Attention still holds" not in text


def render(metrics: dict, tmp_path, monkeypatch) -> str:
    import json
    from types import SimpleNamespace

    from pipeline.reporting.ablations import render as render_report

    folder = tmp_path / "reports/ablations"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({**metrics, "decoder": "greedy"}))
    monkeypatch.chdir(tmp_path)
    params = SimpleNamespace(ablations=SimpleNamespace(variants=VARIANTS, reordered_order="swap_halves"))
    return render_report(params)


def test_a_control_that_did_not_learn_the_task_is_inconclusive(tmp_path, monkeypatch):
    metrics = run_analysis(reversed_falls=True, capacity_grows=True, attention_holds_reordered=True)
    metrics["models"]["rnnenc-gru-reversed"]["bleu_10_19"] = 10.0  # the headline's is 60
    text = render(metrics, tmp_path, monkeypatch)
    assert "did **not** learn the task at this budget" in text and "**inconclusive**" in text
    assert "does not come from what this control removes" not in text


@pytest.mark.parametrize("source_order_falls", [True, False])
def test_a_control_that_learned_the_source_order_is_judged_on_that_order(tmp_path, monkeypatch, source_order_falls):
    """A lag control that translates in the source's word order (not the task's swaps) fails the task's
    reference at every length; against the source-order translation it is judged like the headline."""
    enc, _, _ = experiment(spec(0.6, 15), spec(0.3, 45), *HOLDS)
    flat, _, _ = experiment(spec(0.6, 15), spec(0.6, 45), *HOLDS, seed=5)
    in_source_order = {"rnnenc-gru": scored(enc, {"10-19": 9.0, "40-49": 5.0}),  # the headline learned the swaps
                       "rnnenc-gru-reversed": scored(enc if source_order_falls else flat, {"10-19": 55.0, "40-49": 9.0})}
    metrics = run_analysis(reversed_falls=True, capacity_grows=True, attention_holds_reordered=True,
                           in_source_order=in_source_order)
    assert list(metrics["source_order"]) == ["rnnenc-gru", "rnnenc-gru-reversed"]
    entry = metrics["source_order"]["rnnenc-gru-reversed"]
    assert entry["bleu_10_19"] == 55.0 and ablations.falls(entry) is source_order_falls
    metrics["models"]["rnnenc-gru-reversed"]["bleu_10_19"] = 10.0  # the headline's is 60: the task not learned
    text = render(metrics, tmp_path, monkeypatch)
    assert "translates in the **source's** word order instead" in text and "**inconclusive**" not in text
    assert "Against the source-order translation" in text and "| `rnnenc-gru-reversed` | 55.0 | 9.0 |" in text
    if source_order_falls:
        assert "the fall persists without what this control removes" in text
    else:
        assert "keeps that order with length" in text and "does **not** rule out" in text
