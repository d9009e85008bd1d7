"""The evaluate stage: BLEU scoring by length (unit tests) and a real run on tiny trained checkpoints."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from models.special_tokens import UNK
from pipeline.evaluation.bleu_by_length import (CSV_COLUMNS, bleu_from_statistics, bootstrap_interval, bucket_scores,
                                     make_bleu, no_unk_mask, score_model, sentence_statistics)
from pipeline.evaluation.claim import KEYS as CLAIM_KEYS
from pipeline.data.length_buckets import BUCKET_LABELS
from tests.pipeline.helpers import assert_one_line_error, run_stage
from tests.pipeline.checkpoint_projects import fitted_checkpoints, project_with_checkpoints
from tests.pipeline.helpers import write_project_params

SENTENCES = [
    "the cat sat on the mat today",
    "a dog barked at the postman in the morning",
    "rain fell all night over the quiet town",
    "she read the letter twice before answering",
    "the children played in the garden until dark",
    "he bought bread and milk at the corner shop",
    "the train was late because of the snow",
    "they walked along the river after dinner",
]


def _statistics(hypotheses, references):
    metric = make_bleu(lowercase=True)
    return metric, sentence_statistics(metric, hypotheses, [references])


def test_dev_bleu_and_evaluate_write_an_unknown_word_alike(tmp_path):
    """One convention: the training-time dev BLEU scores the same text evaluate writes (UNK, one token)."""
    from pipeline.data.corpora import Corpus
    from pipeline.training.dev_bleu import DevBleu
    from pipeline.evaluation.test_set import load_test_set
    from pipeline.data.tokenization import UNK_TEXT
    from tests.pipeline.training.tiny_corpus import write_tiny_corpus

    write_tiny_corpus(tmp_path)
    test = load_test_set(Corpus(tmp_path, tmp_path, tmp_path, "prepare", "models"))
    dev_bleu = DevBleu(tmp_path, sentences=4, every=1)
    dev_bleu.setup(None, None, "fit")
    ids = [test.tgt_vocab.itos.index("b3"), UNK, test.tgt_vocab.itos.index("b5")]
    assert test.text(ids) == dev_bleu.detokenize(dev_bleu.vocabulary.decode(ids)) == f"b3 {UNK_TEXT} b5"


# --- scoring ---------------------------------------------------------------------------------------

def test_identical_hypotheses_score_100_in_every_bucket_with_a_degenerate_interval():
    metric, stats = _statistics(SENTENCES, SENTENCES)
    buckets = np.array([0, 0, 1, 1, 1, 3, 3, 3])
    rows = bucket_scores(metric, stats, buckets, samples=200, seed=1)
    assert [row.bucket for row in rows] == list(BUCKET_LABELS)
    for row in rows:
        if row.bucket in ("0-9", "10-19", "30-39"):
            assert row.n == (2 if row.bucket == "0-9" else 3)
            assert row.bleu == row.ci_low == row.ci_high == row.bleu_nobp == 100.0
            assert row.bp == 1.0 and row.len_ratio == 1.0
            assert (row.p1, row.p2, row.p3, row.p4) == (100.0, 100.0, 100.0, 100.0)
        else:  # empty bucket: no values
            assert row.n == 0 and row.bleu is None and row.ci_low is None and row.p4 is None


def test_statistics_sums_reproduce_sacrebleu_corpus_score():
    hypotheses = [s.replace("the", "a", 1) for s in SENTENCES[:5]] + SENTENCES[5:]
    metric, stats = _statistics(hypotheses, SENTENCES)
    expected = sacrebleu.corpus_bleu(hypotheses, [SENTENCES], lowercase=True)
    assert bleu_from_statistics(metric, stats.sum(axis=0)).score == pytest.approx(expected.score, abs=1e-9)
    subset = sacrebleu.corpus_bleu(hypotheses[2:6], [SENTENCES[2:6]], lowercase=True)
    assert bleu_from_statistics(metric, stats[2:6].sum(axis=0)).score == pytest.approx(subset.score, abs=1e-9)


def test_bootstrap_interval_is_seeded_and_contains_the_point_estimate():
    hypotheses = [" ".join(s.split()[::-1]) if i % 3 == 0 else s.replace("the ", "") for i, s in enumerate(SENTENCES)]
    metric, stats = _statistics(hypotheses * 4, SENTENCES * 4)
    point = bleu_from_statistics(metric, stats.sum(axis=0)).score
    low, high = bootstrap_interval(metric, stats, 500, np.random.default_rng(7))
    assert low < point < high
    assert (low, high) == bootstrap_interval(metric, stats, 500, np.random.default_rng(7))
    assert (low, high) != bootstrap_interval(metric, stats, 500, np.random.default_rng(8))
    buckets = np.zeros(len(stats), dtype=int)
    assert bucket_scores(metric, stats, buckets, 100, seed=3) == bucket_scores(metric, stats, buckets, 100, seed=3)


def test_short_hypotheses_get_a_brevity_penalty():
    short = [" ".join(s.split()[:3]) for s in SENTENCES]
    metric, stats = _statistics(short, SENTENCES)
    (row, *_) = bucket_scores(metric, stats, np.zeros(len(stats), dtype=int), 50, seed=0)
    assert row.bp < 0.5 and row.len_ratio < 0.5
    assert row.p1 == 100.0  # every word it said is right: the loss is brevity, not precision
    four = [" ".join(s.split()[:4]) for s in SENTENCES]  # 4-grams too: BLEU > 0, and all of it is brevity
    metric, stats = _statistics(four, SENTENCES)
    (row, *_) = bucket_scores(metric, stats, np.zeros(len(stats), dtype=int), 50, seed=0)
    assert row.bleu_nobp == 100.0 and row.bleu == pytest.approx(100 * row.bp, abs=0.01) and row.bp < 0.5


def test_multi_reference_bleu_is_at_least_single_reference():
    references = ["the cat sat on the mat", "a dog barked at the postman"]
    alternatives = ["a cat was sitting on the mat", "the dog barked at a postman"]
    hypotheses = ["a cat was sitting on the mat", "the dog barked at the postman"]
    scores = score_model(hypotheses, [references, alternatives], np.zeros(2, dtype=int), np.ones(2, dtype=bool),
                         lowercase=True, samples=20, seed=0)
    single = sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score
    assert scores.bleu == pytest.approx(single)
    assert scores.bleu_multi_ref > scores.bleu
    assert "nrefs:2" in scores.signature_multi_ref and "nrefs:1" in scores.signature
    assert scores.signature.startswith("nrefs:1|case:lc|")


def test_no_unk_subset_needs_source_and_reference_free_of_unknown_words():
    src = [np.array([5, 6, 7]), np.array([5, UNK, 7]), np.array([8, 9]), np.array([4])]
    tgt = [np.array([5, 6]), np.array([5, 6]), np.array([UNK, 9]), np.array([4, 4])]
    assert no_unk_mask(src, tgt).tolist() == [True, False, False, True]
    hypotheses = ["a b c", "x y z", "p q", "d e"]
    references = ["a b c", "a b c", "p q r", "d e f"]
    scores = score_model(hypotheses, [references], np.zeros(4, dtype=int), no_unk_mask(src, tgt), lowercase=False,
                         samples=10, seed=0)
    assert scores.no_unk_n == 2 and scores.n == 4
    only_known = sacrebleu.corpus_bleu([hypotheses[0], hypotheses[3]], [[references[0], references[3]]]).score
    assert scores.bleu_no_unk == pytest.approx(only_known)
    assert scores.metrics()["bleu_no_unk"] == round(only_known, 2)
    assert list(scores.metrics()) == ["bleu", "bleu_no_unk", "bleu_multi_ref", "signature", "signature_multi_ref",
                                      "n", "no_unk_n"]


def test_a_thousand_resamples_of_two_thousand_sentences_are_fast():
    rng = np.random.default_rng(0)
    stats = rng.integers(1, 30, size=(2000, 10))
    stats[:, 6:] = stats[:, 2:6] + rng.integers(0, 10, size=(2000, 4))  # totals ≥ matches
    import time
    started = time.perf_counter()
    bucket_scores(make_bleu(True), stats, np.arange(2000) % len(BUCKET_LABELS), 1000, seed=0)
    assert time.perf_counter() - started < 5.0


# --- the stage, end to end -------------------------------------------------------------------------

MODELS = ["lm-gru", "rnnenc-gru", "rnnsearch-gru"]
TEST_SIZE = 32  # tiny_corpus's test split
EVALUATE = {"beam_size": 3, "batch_sentences": 8, "bootstrap_samples": 50, "heatmaps": 2, "heatmap_min_words": 5}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    return fitted_checkpoints(tmp_path_factory.mktemp("checkpoints"), MODELS)


def _project(root: Path, checkpoints: Path, models: list[str], corpus: str = "bible") -> Path:
    return project_with_checkpoints(root, checkpoints, models, corpus, MODELS, evaluate=EVALUATE)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, checkpoints):
    project = _project(tmp_path_factory.mktemp("project"), checkpoints, MODELS)
    result = run_stage(project, "evaluate")
    assert result.returncode == 0, result.stderr
    return project, result


def test_stage_writes_every_declared_output(evaluated):
    project, result = evaluated
    reports = project / "reports"
    figures = [reports / "figures/bleu_by_length.png"] + [reports / f"figures/attention_rnnsearch-gru_{k}.png"
                                                          for k in range(EVALUATE["heatmaps"])]
    for path in [reports / "metrics.json", reports / "bleu_by_length.csv", reports / "samples.json", *figures]:
        assert path.is_file() and path.stat().st_size > 0, path
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(reports.glob("figures/attention_rnnenc*"))  # no attention without RNNsearch
    assert not list(reports.glob(".evaluate-*"))  # the work folder is gone
    assert "decode rnnsearch-gru" in result.stderr  # a progress bar per model


def test_hypotheses_have_one_line_per_test_sentence(evaluated):
    project, result = evaluated
    for name in ("rnnenc-gru", "rnnsearch-gru"):
        for decoder in ("", ".greedy"):  # beam search (the main decoder) and greedy search
            lines = (project / f"reports/hypotheses/{name}{decoder}.txt").read_text(encoding="utf-8").split("\n")
            assert len(lines) == TEST_SIZE + 1 and lines[-1] == ""
        assert f"decoded {name} (beam 3, " in result.stdout and f"decoded {name} (greedy, " in result.stdout
    assert sorted(p.name for p in (project / "reports/hypotheses").iterdir()) == [
        "rnnenc-gru.greedy.txt", "rnnenc-gru.txt", "rnnsearch-gru.greedy.txt", "rnnsearch-gru.txt"]


def test_metrics_json(evaluated):
    project, _ = evaluated
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert list(metrics) == MODELS + ["claim"]  # params order, then the test of the claim
    assert list(metrics["lm-gru"]) == ["ppl"] and 1.0 < metrics["lm-gru"]["ppl"] < 20  # 16-word vocabulary
    for name in ("rnnenc-gru", "rnnsearch-gru"):
        entry = metrics[name]  # beam search's scores, then greedy's
        assert list(entry) == ["bleu", "bleu_no_unk", "bleu_multi_ref", "signature", "signature_multi_ref", "n",
                               "no_unk_n", "greedy"]
        assert entry["n"] == entry["no_unk_n"] == TEST_SIZE  # the tiny corpus has no unknown word
        assert entry["bleu"] == entry["bleu_no_unk"] == entry["bleu_multi_ref"]  # one reference
        assert entry["signature"].startswith("nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:")
        assert 0.0 <= entry["bleu"] <= 100.0
        greedy = entry["greedy"]
        assert list(greedy) == ["bleu", "bleu_no_unk", "bleu_multi_ref"] and 0.0 <= greedy["bleu"] <= 100.0
        hypotheses = (project / f"reports/hypotheses/{name}.greedy.txt").read_text(encoding="utf-8").splitlines()
        references = (project / "data/prepared/test/tgt.txt").read_text(encoding="utf-8").splitlines()
        assert greedy["bleu"] == round(sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score, 2)
    # Every tiny test sentence has 1-7 words: the pair is reported, not tested.
    assert list(metrics["claim"]) == ["beam", "greedy"]
    for decoder in ("beam", "greedy"):
        assert list(metrics["claim"][decoder]) == ["gru"]
        entry = metrics["claim"][decoder]["gru"]
        assert tuple(entry) == CLAIM_KEYS and entry["shown"] is False and entry["r_enc"] is None
        assert entry["verdict"] == "not tested: no test sentence of 10-19 or 40-49 words"


def test_bleu_by_length_csv(evaluated):
    project, _ = evaluated
    with (project / "reports/bleu_by_length.csv").open(newline="") as handle:
        header = handle.readline().strip()
        rows = list(csv.DictReader(handle, fieldnames=header.split(",")))
    assert header == "model,decoder,bucket,n,bleu,ci_low,ci_high,bleu_nobp,bp,len_ratio,p1,p2,p3,p4"
    assert tuple(header.split(",")) == CSV_COLUMNS
    assert [(r["model"], r["decoder"], r["bucket"]) for r in rows] == [
        (m, d, b) for m in ("rnnenc-gru", "rnnsearch-gru") for d in ("beam", "greedy") for b in BUCKET_LABELS]
    metrics = json.loads((project / "reports/metrics.json").read_text())
    for row in rows:
        if row["bucket"] == "0-9":  # every tiny sentence has 1-7 words: this bucket is the whole test set
            assert int(row["n"]) == TEST_SIZE
            assert float(row["ci_low"]) <= float(row["bleu"]) <= float(row["ci_high"])
            assert 0 < float(row["bp"]) <= 1 and float(row["len_ratio"]) > 0
            assert float(row["bleu_nobp"]) * float(row["bp"]) == pytest.approx(float(row["bleu"]), abs=0.01)
            scores = metrics[row["model"]] if row["decoder"] == "beam" else metrics[row["model"]]["greedy"]
            assert float(row["bleu"]) == scores["bleu"]
        else:
            assert row["n"] == "0" and all(row[k] == "" for k in CSV_COLUMNS[4:])


def test_samples_json(evaluated):
    project, _ = evaluated
    samples = json.loads((project / "reports/samples.json").read_text(encoding="utf-8"))
    assert len(samples["language_models"]["lm-gru"]) == 5
    assert all(isinstance(s, str) for s in samples["language_models"]["lm-gru"])
    for name in ("rnnenc-gru", "rnnsearch-gru"):
        assert samples["translations"][name] == {"short": [], "long": []}  # tiny sentences: none 10+ words


def test_synthetic_corpus_goes_to_its_own_reports_and_beam_1_is_greedy_only(tmp_path, checkpoints, evaluated):
    project = _project(tmp_path, checkpoints, ["rnnsearch-gru"], corpus="synthetic")
    write_project_params(project, {"experiments": {"synthetic_models": ["rnnsearch-gru"]},
                                   "evaluate": EVALUATE | {"beam_size": 1}})
    result = run_stage(project, "evaluate", "--corpus", "synthetic")
    assert result.returncode == 0, result.stderr
    reports = project / "reports/synthetic"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert list(metrics) == ["rnnsearch-gru", "claim"] and "greedy" not in metrics["rnnsearch-gru"]
    assert metrics["claim"] == {"greedy": {"gru": metrics["claim"]["greedy"]["gru"]}}
    assert metrics["claim"]["greedy"]["gru"]["verdict"] == "not tested: rnnenc-gru was not evaluated"
    with (reports / "bleu_by_length.csv").open(newline="") as handle:
        assert {row["decoder"] for row in csv.DictReader(handle)} == {"greedy"}
    # The only decode is greedy: the same output as the bible run's greedy decode of the same model and data.
    assert [p.name for p in (reports / "hypotheses").iterdir()] == ["rnnsearch-gru.txt"]
    assert (reports / "hypotheses/rnnsearch-gru.txt").read_text() == \
        (evaluated[0] / "reports/hypotheses/rnnsearch-gru.greedy.txt").read_text()
    assert (reports / "figures/bleu_by_length.png").is_file() and len(list((reports / "figures").iterdir())) == 3
    assert not (project / "reports/metrics.json").exists()


def test_missing_checkpoint_is_a_one_line_error(tmp_path, checkpoints):
    project = _project(tmp_path, checkpoints, ["rnnenc-gru"])
    write_project_params(project, {"experiments": {"models": ["rnnenc-gru", "rnnsearch-lstm"]},
                                   "evaluate": EVALUATE})
    result = run_stage(project, "evaluate")
    assert_one_line_error(result, "checkpoints/bible/rnnsearch-lstm/best.ckpt", "train stage")
    assert not (project / "reports/metrics.json").exists()


def test_missing_prepared_corpus_is_a_one_line_error(tmp_path):
    write_project_params(tmp_path, {"evaluate": EVALUATE})
    result = run_stage(tmp_path, "evaluate", "--corpus", "synthetic")
    assert_one_line_error(result, "data/synthetic/corpus.json", "prepare --section synthetic")


def test_bad_evaluate_param_is_a_config_error(tmp_path):
    write_project_params(tmp_path, {"evaluate": {"beam_size": 0}})
    result = run_stage(tmp_path, "evaluate")
    assert_one_line_error(result, "evaluate.beam_size", exit_code=2)


def test_checkpoint_of_another_model_is_a_one_line_error(tmp_path, checkpoints):
    project = _project(tmp_path, checkpoints, [])
    target = project / "checkpoints/bible/rnnsearch-gru/best.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes((checkpoints / "rnnenc-gru/best.ckpt").read_bytes())
    write_project_params(project, {"experiments": {"models": ["rnnsearch-gru"]},
                                   "evaluate": EVALUATE})
    result = run_stage(project, "evaluate")
    assert_one_line_error(result, "checkpoints/bible/rnnsearch-gru/best.ckpt", "'rnnenc-gru'")
