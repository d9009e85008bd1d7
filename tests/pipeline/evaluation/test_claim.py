"""pipeline.evaluation.claim: the test of "a fixed vector loses content with length, attention does not",
on hand-made per-sentence sacrebleu statistics (rows [hyp_len, ref_len, correct_1..4, total_1..4])."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sacrebleu

from pipeline.evaluation.bleu_by_length import bleu_from_statistics, bleu_nobp, bucket_scores, make_bleu, sentence_statistics
from pipeline.evaluation.claim import KEYS, LONG, SHORT, judge, pair_claim
from pipeline.evaluation.losses import BP_AT_LEAST, KEEPS, LENGTH, ORDER, OVER, WORDS
from pipeline.data.length_buckets import BUCKET_LABELS

SHORT_INDEX, LONG_INDEX = BUCKET_LABELS.index(SHORT), BUCKET_LABELS.index(LONG)
SAMPLES, SEED = 200, 1234


def sentences(n: int, precision: float, length: int, ref_len: int | None = None, noise: float = 0.02,
              p1: float | None = None, seed: int = 0) -> np.ndarray:
    """n statistics rows of ``length``-token hypotheses whose n-gram precisions are about ``precision``
    (unigrams: ``p1`` when given; ± ``noise`` per sentence), against references of ``ref_len`` tokens
    (default: as long)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 10), dtype=np.int64)
    rows[:, 0], rows[:, 1] = length, ref_len or length
    for i in range(n):
        shift = noise * rng.standard_normal()
        for k in range(4):
            p = float(np.clip((p1 if k == 0 and p1 is not None else precision) + shift, 0.0, 1.0))
            total = length - k
            rows[i, 2 + k], rows[i, 6 + k] = round(p * total), total
    return rows


def experiment(enc_short: dict, enc_long: dict, search_short: dict, search_long: dict, seed: int = 0):
    """(rnnenc statistics, rnnsearch statistics, buckets): the short bucket's sentences, then the long one's."""
    enc = np.vstack([sentences(**enc_short, seed=seed + 1), sentences(**enc_long, seed=seed + 2)])
    search = np.vstack([sentences(**search_short, seed=seed + 3), sentences(**search_long, seed=seed + 4)])
    assert enc_short["n"] == search_short["n"] and enc_long["n"] == search_long["n"]  # the same test sentences
    buckets = np.array([SHORT_INDEX] * enc_short["n"] + [LONG_INDEX] * enc_long["n"])
    return enc, search, buckets


def spec(precision, length, n=120, **more):
    return dict(n=n, precision=precision, length=length, **more)


HOLDS = (spec(0.8, 15), spec(0.8, 45))  # attention: the same precision at both lengths
CASES = {  # name: (rnnenc 10-19, rnnenc 40-49, rnnsearch 10-19, rnnsearch 40-49), shown, lost, words in the verdict
    "words lost": ((spec(0.6, 15), spec(0.3, 45), *HOLDS), True, [WORDS],
                   ["bottleneck shown", "rnnenc-gru's precision falls", "rnnsearch-gru's holds",
                    "rnnenc-gru loses words (its unigram precision falls: r_p1 = 0.50", "its length holds"]),
    "order lost": ((spec(0.6, 15, p1=0.98), spec(0.2, 45, p1=0.96), *HOLDS), True, [ORDER],
                   ["bottleneck shown", "rnnenc-gru loses word order (its unigram precision holds, r_p1 = 0.97",
                    "while its 4-gram precision falls, r_p4 = 0.34"]),
    "brevity only": ((spec(0.6, 15), spec(0.6, 30, ref_len=45), *HOLDS), False, [LENGTH],
                     ["not shown", "rnnenc-gru's precision does not fall below 0.85 with confidence",
                      "no loss of content is shown for rnnenc-gru", "rnnenc-gru loses length (its brevity penalty "
                      "at the long bucket falls: BP = 0.61"]),
    "order and length": ((spec(0.6, 15, p1=0.98), spec(0.2, 36, ref_len=45, p1=0.96), *HOLDS), True, [ORDER, LENGTH],
                         ["bottleneck shown", "loses word order", "and length (its brevity penalty"]),
    "over-generation": ((spec(0.6, 15), spec(0.4, 60, ref_len=45), *HOLDS), False, [WORDS, OVER],
                        ["not shown", "rnnenc-gru over-generates at 40-49 words", "hyp/ref ratio = 1.33"]),
    "attention falls too": ((spec(0.6, 15), spec(0.3, 45), spec(0.8, 15), spec(0.6, 45)), False, [WORDS],
                            ["not shown", "attention does not hold: rnnsearch-gru's precision is not at least 0.85"]),
    "overlapping interval": ((spec(0.6, 15, n=3, noise=0.3), spec(0.5, 45, n=3, noise=0.3),
                              spec(0.6, 15, n=3, noise=0.3), spec(0.6, 45, n=3, noise=0.3)), False, None,
                             ["not shown", "the 95% interval of the difference r_search − r_enc includes 0"]),
    "attention keeps less": ((spec(0.3, 15), spec(0.6, 45), spec(0.8, 15), spec(0.5, 45)), False, [],
                             ["not shown", "the 95% interval of the difference r_search − r_enc lies below 0: "
                              "attention keeps less of its precision than the fixed vector"]),
}


@pytest.mark.parametrize("name", CASES)
def test_verdict(name):
    specs, shown, losses, words = CASES[name]
    enc, search, buckets = experiment(*specs)
    result = pair_claim("gru", enc, search, buckets, SAMPLES, SEED)
    assert result.shown is shown, result.verdict
    if losses is not None:
        assert list(result.lost) == losses, result.verdict
    for word in words:
        assert word in result.verdict, result.verdict
    if name == "words lost":
        assert result.r_enc.high < KEEPS <= result.r_search.low and result.diff.low > 0
        assert result.r_enc.value == pytest.approx(0.5, abs=0.05)
        assert result.r_search.value == pytest.approx(1, abs=0.05)
        assert result.bp_enc_short == result.parts.bp_long.value == 1.0 and result.seeds == 1
    if name == "attention falls too":  # the only failed condition: the fixed vector does fall, in content
        assert result.verdict.split(". ")[0].count(";") == 0 and result.diff.low > 0 and result.r_enc.high < 1
    if name == "brevity only":
        assert result.parts.bp_long.value == pytest.approx(math.exp(1 - 45 / 30))
        assert result.parts.bp_long.high < BP_AT_LEAST and result.r_enc.low < 1 < result.r_enc.high
    for found in result.intervals().values():
        assert found.low <= found.value <= found.high


def seeded(*specs_by_seed):
    """(S, N, 10) statistics of both models from one CASES spec per training seed."""
    runs = [experiment(*specs, seed=10 * k) for k, specs in enumerate(specs_by_seed)]
    return np.stack([r[0] for r in runs]), np.stack([r[1] for r in runs]), runs[0][2]


def test_seeds_widen_the_interval_and_must_each_agree():
    words, order = CASES["words lost"][0], CASES["order lost"][0]
    enc, search, buckets = seeded(words, words, words)
    three = pair_claim("gru", enc, search, buckets, SAMPLES, SEED, seed_names=["1234", "1", "2"])
    assert three.shown and three.seeds == 3 and list(three.per_seed) == ["1234", "1", "2"]
    assert "bottleneck shown on each of 3 training seeds and pooled" in three.verdict
    assert all(claim.shown for claim in three.per_seed.values())
    # Training variance: seeds that differ (one fixed vector keeps more) widen r_enc's interval.
    milder = (spec(0.6, 15), spec(0.45, 45), *HOLDS)
    enc_varied, search_varied, _ = seeded(words, milder, words)
    varied = pair_claim("gru", enc_varied, search_varied, buckets, SAMPLES, SEED)
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(varied.r_enc) > 2 * width(three.r_enc)
    # One seed on which the fixed vector does not fall: not shown, and the verdict names the seed.
    flat = (spec(0.6, 15), spec(0.6, 45), *HOLDS)
    enc_bad, search_bad, _ = seeded(order, order, flat)
    disagree = pair_claim("gru", enc_bad, search_bad, buckets, SAMPLES, SEED)
    assert not disagree.shown and not disagree.per_seed["3"].shown
    assert "the seeds disagree: not shown on seed 3 of 3" in disagree.verdict
    entry = judge({"beam": {"rnnenc-gru": enc_bad, "rnnsearch-gru": search_bad}}, buckets, SAMPLES, SEED)["beam"]["gru"]
    assert entry["seeds"] == 3 and entry["per_seed"]["3"]["shown"] is False and entry["per_seed"]["1"]["shown"]


def test_one_seed_resamples_as_before():
    """(1, N, 10) and (N, 10) are the same experiment: identical intervals, no per-seed entries."""
    enc, search, buckets = experiment(*CASES["order lost"][0])
    flat = pair_claim("gru", enc, search, buckets, SAMPLES, SEED)
    stacked = pair_claim("gru", enc[None], search[None], buckets, SAMPLES, SEED)
    assert flat == stacked and flat.per_seed == {}


def test_bleu_nobp_is_bleu_over_brevity_penalty():
    references = ["the cat sat on the mat today", "a dog barked at the postman in the morning",
                  "rain fell all night over the quiet town"]
    for hypotheses in (["the cat sat on the mat", "a dog barked at the postman", "rain fell"],  # short: BP < 1
                       ["the cat sat on a mat today", "a dog barked at the man in the morning",
                        "rain fell all day over the town"]):
        score = sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True)
        geometric_mean = math.exp(sum(math.log(p) for p in score.precisions) / 4)
        assert bleu_nobp(score) == pytest.approx(score.score / score.bp) == pytest.approx(geometric_mean)
        metric = make_bleu(True)
        stats = sentence_statistics(metric, hypotheses, [references])
        (row, *_) = bucket_scores(metric, stats, np.zeros(3, dtype=int), 20, seed=0)
        assert row.bleu_nobp == round(score.score / score.bp, 2)
    assert bleu_nobp(bleu_from_statistics(make_bleu(True), np.zeros(10, dtype=np.int64))) == 0.0  # empty output


def test_paired_bootstrap_is_deterministic_for_a_seed():
    enc, search, buckets = experiment(*CASES["overlapping interval"][0])
    first = pair_claim("gru", enc, search, buckets, SAMPLES, seed=7)
    assert first == pair_claim("gru", enc, search, buckets, SAMPLES, seed=7)
    assert first.diff != pair_claim("gru", enc, search, buckets, SAMPLES, seed=8).diff
    assert judge({"beam": {"rnnenc-gru": enc, "rnnsearch-gru": search}}, buckets, SAMPLES, 7) == \
        judge({"beam": {"rnnenc-gru": enc, "rnnsearch-gru": search}}, buckets, SAMPLES, 7)


def test_the_resample_is_paired_across_the_two_models():
    """Two identical models: every resample gives the same ratio to both, so the difference is exactly 0
    (unpaired resamples would give a wide interval around 0)."""
    enc, _, buckets = experiment(*CASES["overlapping interval"][0])
    result = pair_claim("gru", enc, enc.copy(), buckets, SAMPLES, SEED)
    assert result.diff.low == result.diff.high == 0.0
    assert result.r_enc == result.r_search and result.r_enc.low < result.r_enc.high


def test_ratios_match_the_bucket_scores():
    enc, search, buckets = experiment(*CASES["words lost"][0])
    metric = make_bleu(False)
    result = pair_claim("gru", enc, search, buckets, SAMPLES, SEED, metric)
    for stats, ratio in ((enc, result.r_enc.value), (search, result.r_search.value)):
        rows = {row.bucket: row for row in bucket_scores(metric, stats, buckets, 10, SEED)}
        assert ratio == pytest.approx(rows[LONG].bleu_nobp / rows[SHORT].bleu_nobp, abs=1e-3)


def test_metrics_entries_and_pairs_that_cannot_be_tested():
    enc, search, buckets = experiment(*CASES["words lost"][0])
    claim = judge({"beam": {"lm-gru": enc[:, :0], "rnnenc-gru": enc, "rnnsearch-gru": search, "rnnsearch-lstm": search,
                            "rnnenc-rnn": enc, "rnnsearch-rnn": search},
                   "greedy": {"rnnenc-gru": enc, "rnnsearch-gru": search}}, buckets, SAMPLES, SEED)
    assert list(claim) == ["beam", "greedy"] and list(claim["beam"]) == ["gru", "lstm", "rnn"]
    for entry in (*claim["beam"].values(), *claim["greedy"].values()):
        assert tuple(entry) == KEYS
    gru = claim["beam"]["gru"]
    assert gru["shown"] is True and gru["n_short"] == gru["n_long"] == 120
    assert all(round(gru[key], 4) == gru[key] for key in KEYS if isinstance(gru[key], float))
    lstm = claim["beam"]["lstm"]
    assert lstm["shown"] is False and lstm["verdict"] == "not tested: rnnenc-lstm was not evaluated"
    assert lstm["r_enc"] is None and lstm["diff_low"] is None
    only_short = np.full(len(buckets), SHORT_INDEX)
    empty = judge({"greedy": {"rnnenc-gru": enc, "rnnsearch-gru": search}}, only_short, SAMPLES, SEED)
    assert empty["greedy"]["gru"]["verdict"] == f"not tested: no test sentence of {LONG} words"
    silent = enc.copy()
    silent[buckets == SHORT_INDEX, 2:6] = 0  # no n-gram match at 10-19: no ratio
    assert "no n-gram match at 10-19" in pair_claim("gru", silent, search, buckets, SAMPLES, SEED).verdict


# --- the report renders metrics.json's claim, and says "bottleneck shown" only when it is -------------

def _claim_metrics(*case_names: str) -> dict:
    """metrics.json's "claim" with the GRU pair of the first case under beam search and greedy."""
    out = {}
    for decoder, name in zip(("beam", "greedy"), case_names):
        enc, search, buckets = experiment(*CASES[name][0])
        out[decoder] = judge({decoder: {"rnnenc-gru": enc, "rnnsearch-gru": search}}, buckets, SAMPLES, SEED)[decoder]
    return out


@pytest.mark.parametrize("beam, greedy", [("order lost", "brevity only"), ("brevity only", "words lost"),
                                          ("attention falls too", "overlapping interval")])
def test_report_claim_section_and_headline(tmp_path, monkeypatch, beam, greedy):
    from pipeline.reporting import sections as report

    claim = _claim_metrics(beam, greedy)
    (tmp_path / "reports/synthetic").mkdir(parents=True)
    (tmp_path / "reports/synthetic/metrics.json").write_text(json.dumps({"claim": claim}))
    monkeypatch.chdir(tmp_path)
    headline = report.headline()
    entry = claim["beam"]["gru"]  # the headline is beam search's
    if beam == "order lost":
        assert "bottleneck shown" in headline and "not shown" not in headline
        assert "What the fixed vector loses is word order" in headline
        assert f"{entry['diff']:.2f} [{entry['diff_low']:.2f}, {entry['diff_high']:.2f}]" in headline
    else:
        assert "bottleneck shown" not in headline and entry["verdict"] in headline
    section = report.claim_section(claim)
    lines = section.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("| cell |")]
    assert len(tables) == 2 and "(beam search)" in lines[tables[0]] and "(greedy search)" in lines[tables[1]]
    for i, decoder in zip(tables, ("beam", "greedy")):
        row = lines[i + 2]
        entry = claim[decoder]["gru"]
        assert row.startswith("| `gru` | ") and ("**shown**" in row) is entry["shown"]
        assert f"[{entry['bp_enc_long_low']:.2f}, {entry['bp_enc_long_high']:.2f}] | {entry['lost']} | 1 |" in row
    for decoder in ("beam", "greedy"):
        verdict = claim[decoder]["gru"]["verdict"]
        assert f"**Measured:** `rnnenc-gru` vs `rnnsearch-gru`, {decoder} search: {verdict}." in lines


def test_report_without_a_claim_says_so(tmp_path, monkeypatch):
    from pipeline.reporting import sections as report

    (tmp_path / "reports/synthetic").mkdir(parents=True)
    (tmp_path / "reports/synthetic/metrics.json").write_text(json.dumps({"rnnsearch-gru": {"bleu": 1.0}}))
    monkeypatch.chdir(tmp_path)
    assert "not tested" in report.headline() and "shown" not in report.headline()
    assert "not tested" in report.claim_section({})
