"""The probe stage: threshold/recall maths on hand-made scores, and a real run on tiny trained models."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.special_tokens import SPECIAL_TOKENS
from pipeline.probing.bow_probe import (Labels, bucket_counts, counts, document_frequency, fit_probe, label_set,
                                ranking_auc, sentence_labels, threshold_at_precision)
from pipeline.data.length_buckets import BUCKET_LABELS
from tests.pipeline.helpers import assert_one_line_error, run_stage
from tests.pipeline.checkpoint_projects import fitted_checkpoints, project_with_checkpoints
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import params_with, write_project_params
from pipeline.config import ProbeConfig

PROBE = ProbeConfig(**params_with()["probe"])  # the repository's probe settings

# --- the maths -------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Small tensors on a shared 2-core machine: two OpenMP threads that wait on each other at every
    op made a 0.1 s fit take 7 s here (as the evaluate tests' fixture, fit on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_threshold_is_the_widest_cut_that_keeps_the_precision():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    truth = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]])
    # cuts: 1/1, 2/2, 2/3, 3/4, 3/5 → the widest with precision ≥ 0.75 takes four
    threshold = threshold_at_precision(scores, truth, target=0.75)
    assert threshold.logit == pytest.approx(0.6) and threshold.precision == 0.75 and threshold.recall == 1.0
    assert threshold.predict(scores).tolist() == [[True, True, True, True, False]]
    strict = threshold_at_precision(scores, truth, target=0.9)
    assert strict.logit == pytest.approx(0.8) and strict.precision == 1.0 and strict.recall == pytest.approx(2 / 3)


def test_tied_scores_are_all_in_or_all_out():
    scores = torch.tensor([0.9, 0.5, 0.5])
    truth = torch.tensor([1.0, 1.0, 0.0])
    threshold = threshold_at_precision(scores, truth, target=0.9)  # taking one 0.5 would be 2/2, both 2/3
    assert threshold.logit == pytest.approx(0.9) and threshold.recall == 0.5
    assert threshold.predict(scores).tolist() == [True, False, False]


def test_an_unreachable_precision_predicts_nothing():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    threshold = threshold_at_precision(scores, torch.zeros(2, 2), target=0.9)
    assert threshold.logit is None and threshold.probability is None and threshold.precision is None
    assert not threshold.predict(scores).any()
    assert counts(threshold.predict(scores), torch.zeros(2, 2)).recall is None  # nothing to find either


def test_counts_per_bucket():
    predicted = torch.tensor([[True, False], [True, True], [False, False]])
    truth = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    result = bucket_counts(predicted, truth, np.array([0, 0, 2]), BUCKET_LABELS)
    assert list(result) == list(BUCKET_LABELS)
    first = result["0-9"]
    assert (first.n, first.words, first.found, first.predicted) == (2, 3, 2, 3)
    assert first.recall == pytest.approx(2 / 3) and first.precision == pytest.approx(2 / 3)
    assert result["20-29"].recall == 0.0 and result["20-29"].precision is None  # nothing predicted there
    assert result["10-19"].as_dict() == {"n": 0, "recall": None, "precision": None, "auc": None, "words": 0,
                                         "found": 0, "predicted": 0}


def test_auc_ranks_present_words_above_absent_ones_without_a_threshold():
    truth = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    # Present words score 0.9, 0.7, 0.4, 0.6; absent ones 0.5, 0.2: 7 of the 8 pairs ranked right.
    logits = torch.tensor([[0.9, 0.5, 0.4], [0.2, 0.7, 0.6]])
    assert ranking_auc(logits, truth) == pytest.approx(7 / 8)
    assert ranking_auc(logits, torch.ones(2, 3)) is None  # nothing absent: no ranking to judge
    result = bucket_counts(logits > 0.55, truth, np.array([0, 1]), BUCKET_LABELS, logits)
    assert result["0-9"].auc == pytest.approx(0.5) and result["10-19"].auc == pytest.approx(1.0)  # per bucket
    assert result["20-29"].auc is None and result["0-9"].as_dict()["auc"] == 0.5


def test_label_set_takes_the_most_frequent_words_and_never_a_special_token():
    specials = len(SPECIAL_TOKENS)
    ids = np.array([1, 4, 4, 5, 1, 6, 5, 7, 1, 5], dtype=np.int32)  # <unk> (1) everywhere
    offsets = np.array([0, 3, 5, 10])  # [1 4 4] [5 1] [6 5 7 1 5]
    frequency = document_frequency(ids, offsets, 9)
    assert frequency.tolist() == [0, 3, 0, 0, 1, 2, 1, 1, 0]  # repeats in a sentence count once
    labels = label_set(frequency, size=3)
    assert labels.ids.tolist() == [5, 4, 6]  # by frequency, ties by the lower id; <unk> left out
    assert all(i >= specials for i in labels.ids)
    assert labels.column.tolist() == [-1, -1, -1, -1, 1, 0, 2, -1, -1]
    rows = sentence_labels(labels, [ids[0:3], ids[3:5], ids[5:10]])
    assert rows.dense().tolist() == [[0, 1, 0], [1, 0, 0], [1, 0, 1]]
    assert rows.rows(np.array([2, 0])).dense().tolist() == [[1, 0, 1], [0, 1, 0]]


def _bag_of_words(n: int, words: int, rng) -> Labels:
    present = rng.random((n, words)) < 0.2  # no word frequent enough to be guessed at 90% precision
    offsets = np.concatenate([[0], np.cumsum(present.sum(1))])
    return Labels(offsets.astype(np.int64), np.nonzero(present)[1].astype(np.int64), words)


def _probe_recall(make_features, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    splits = {name: _bag_of_words(n, 30, rng) for name, n in (("train", 1500), ("dev", 300), ("test", 300))}
    features = {name: make_features(labels, rng) for name, labels in splits.items()}
    probe = fit_probe(features["train"], splits["train"], epochs=20, batch=128, lr=0.05, seed=PROBE.seed)
    threshold = threshold_at_precision(probe.logits(features["dev"]), splits["dev"].dense(), PROBE.target_precision)
    result = counts(threshold.predict(probe.logits(features["test"])), splits["test"].dense())
    return result.recall, result.precision


@pytest.mark.usefixtures("one_thread")
def test_features_that_hold_the_words_give_full_recall():
    def bag_with_noise(labels, rng):  # the bag of words itself, in 40 dimensions, plus noise
        dense = labels.dense()
        mixing = torch.from_numpy(np.random.default_rng(99).normal(size=(dense.size(1), 40))).float()
        return dense @ mixing + 0.01 * torch.from_numpy(rng.normal(size=(len(dense), 40))).float()

    recall, precision = _probe_recall(bag_with_noise)
    # Separable: every word is found; the widest dev cut at 90% then admits false alarms up to 10%.
    assert recall == 1.0 and precision == pytest.approx(PROBE.target_precision, abs=0.03)


@pytest.mark.usefixtures("one_thread")
def test_random_features_give_low_recall():
    recall, _ = _probe_recall(lambda labels, rng: torch.from_numpy(rng.normal(size=(len(labels), 40))).float())
    assert recall < 0.05


@pytest.mark.usefixtures("one_thread")
def test_fitting_is_deterministic():
    rng = np.random.default_rng(3)
    labels = _bag_of_words(300, 10, rng)
    features = torch.from_numpy(rng.normal(size=(300, 8))).float()
    settings = dict(epochs=3, batch=PROBE.batch_sentences, lr=PROBE.lr, seed=PROBE.seed)
    first, second = fit_probe(features, labels, **settings), fit_probe(features, labels, **settings)
    assert torch.equal(first.layer.weight, second.layer.weight) and torch.equal(first.layer.bias, second.layer.bias)


# --- the stage, end to end -------------------------------------------------------------------------

MODELS = ["rnnenc-gru", "rnnsearch-gru"]
TEST_SIZE = 32  # tiny_corpus's test split
COLUMNS = ["model", "bucket", "n", "recall", "precision", "auc", "words", "found", "predicted"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    return fitted_checkpoints(tmp_path_factory.mktemp("checkpoints"), MODELS)


def _project(root: Path, checkpoints: Path, models: list[str], corpus: str = "bible") -> Path:
    return project_with_checkpoints(root, checkpoints, models, corpus, ["lm-gru", *MODELS])


@pytest.fixture(scope="module")
def probed(tmp_path_factory, checkpoints):
    project = _project(tmp_path_factory.mktemp("project"), checkpoints, MODELS)
    result = run_stage(project, "probe")
    assert result.returncode == 0, result.stderr
    return project, result


def test_stage_writes_its_outputs(probed):
    project, result = probed
    reports = project / "reports"
    for name in ("probe.json", "probe_by_length.csv", "probe_by_length.png"):
        assert (reports / name).is_file() and (reports / name).stat().st_size > 0, name
    assert (reports / "probe_by_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(reports.glob(".probe-*"))  # the work folder is gone
    assert "rnnenc-gru" in result.stdout and "0-9" in result.stdout and "probed 2 models" in result.stdout


def test_probe_json(probed):
    project, _ = probed
    results = json.loads((project / "reports/probe.json").read_text())
    assert list(results) == MODELS  # lm-gru is not probed; params order
    for name, entry in results.items():
        assert entry["feature"] == ("c" if name.startswith("rnnenc") else "mean annotation")
        assert entry["dim"] == (32 if name.startswith("rnnenc") else 64)  # H, 2H of the tiny models
        assert entry["labels"] == 12 and entry["train_sentences"] == 1024  # every tiny word, every sentence
        assert entry["target_precision"] == PROBE.target_precision
        # The widest dev cut at ≥ 90%: one more distinct score would fall below it.
        assert entry["threshold"] is not None and 0.0 < entry["threshold"] < 1.0
        assert PROBE.target_precision <= entry["dev_precision"] <= PROBE.target_precision + 0.05
        assert 0.0 <= entry["recall"] <= 1.0 and entry["n"] == TEST_SIZE
        assert list(entry["buckets"]) == list(BUCKET_LABELS)
        first = entry["buckets"]["0-9"]  # every tiny sentence has 1-7 words
        assert first["n"] == TEST_SIZE and first["recall"] == entry["recall"]
        assert first["found"] <= first["words"] and first["found"] <= first["predicted"]
        assert 0.0 <= first["auc"] <= 1.0 and first["auc"] == entry["auc"]
        assert all(row["n"] == 0 and row["recall"] is None for label, row in entry["buckets"].items() if label != "0-9")
    assert results["rnnsearch-gru"]["recall"] > 0.5  # its annotations hold the words of 7-word sentences


def test_probe_csv(probed):
    project, _ = probed
    with (project / "reports/probe_by_length.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == COLUMNS
    assert [(r["model"], r["bucket"]) for r in rows] == [(m, b) for m in MODELS for b in BUCKET_LABELS]
    for row in rows:
        if row["bucket"] == "0-9":
            assert int(row["n"]) == TEST_SIZE and 0.0 <= float(row["recall"]) <= 1.0
            assert 0.0 <= float(row["precision"]) <= 1.0 and 0.0 <= float(row["auc"]) <= 1.0
        else:
            assert row["n"] == "0" and row["recall"] == row["precision"] == row["auc"] == ""


def test_two_runs_give_identical_outputs(probed):
    project, _ = probed
    before = {name: (project / "reports" / name).read_bytes() for name in ("probe.json", "probe_by_length.csv")}
    result = run_stage(project, "probe")
    assert result.returncode == 0, result.stderr
    for name, content in before.items():
        assert (project / "reports" / name).read_bytes() == content, name


def test_mlflow_gets_recall_by_length_threshold_and_figure(probed):
    from mlflow.tracking import MlflowClient

    project, _ = probed
    results = json.loads((project / "reports/probe.json").read_text())
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bottleneck")
    runs = {r.data.tags["bottleneck.model"]: r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get("bottleneck.role") == "model"}
    assert sorted(runs) == MODELS
    for name, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["dvc.stage.probe"] == "ran"
        assert run.data.metrics["probe_threshold"] == pytest.approx(results[name]["threshold"])
        assert run.data.metrics["probe_recall"] == pytest.approx(results[name]["recall"])
        assert run.data.metrics["probe_auc"] == pytest.approx(results[name]["auc"])
        for metric in ("probe_recall_by_length", "probe_auc_by_length"):
            curve = client.get_metric_history(run.info.run_id, metric)
            assert {point.step for point in curve} == {0}  # only 0-9 holds tiny sentences
        assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/probe_by_length.png"]


def test_probe_section_reads_the_outputs(probed, monkeypatch):
    from pipeline.probing.summary import probe_section

    project, _ = probed
    monkeypatch.chdir(project)
    section = probe_section("bible", "your corpus (help.tsv)")
    assert section.startswith("### Probe of the encoder's summary (your corpus (help.tsv))")
    assert "![probe recall by source length](probe_by_length.png)" in section
    assert "| model | probed vector | 0-9 (n=32) | 10-19 (n=0) |" in section
    assert "| all | 40-49 / 10-19 | AUC 10-19 → 40-49 |\n" in section
    assert "| `rnnenc-gru` | c (32) |" in section and "| `rnnsearch-gru` | mean annotation (64) |" in section
    assert section.splitlines()[-1] == ("Reading: `rnnenc-gru` and `rnnsearch-gru` have no recall at 10-19 or "
                                        "40-49 words (no test sentences there), so the fall cannot be read.")


def test_reading_compares_the_fall_of_the_fixed_vector_with_the_baseline():
    from pipeline.probing.summary import reading

    def entry(feature, short, long):
        return {"feature": feature, "buckets": {"10-19": {"recall": short}, "40-49": {"recall": long}}}

    results = {"rnnenc-lstm": entry("c", 0.9, 0.1), "rnnenc-gru": entry("c", 0.6, 0.3),
               "rnnsearch-gru": entry("mean annotation", 0.9, 0.72)}
    results["rnnenc-gru"]["buckets"]["10-19"]["auc"] = 0.99
    results["rnnenc-gru"]["buckets"]["40-49"]["auc"] = 0.8
    assert reading(results) == (
        "Reading: from 10-19- to 40-49-word sentences, `rnnenc-gru`'s c goes from 60.0% to 30.0% of the words "
        "(keeps 0.50 of its recall; ROC AUC 0.990 → 0.800) and `rnnsearch-gru`'s mean annotation goes from 90.0% "
        "to 72.0% of the words (keeps 0.80 of its recall).")
    saturated = {name: entry(feature, 1.0, 0.995) for name, feature in (("rnnenc-gru", "c"),
                                                                          ("rnnsearch-gru", "mean annotation"))}
    assert reading(saturated).endswith("what is lost with length is the words' order, which a bag-of-words probe "
                                       "cannot see (compare p1 with p4 in bleu_by_length.csv).")


@pytest.mark.usefixtures("one_thread")
def test_features_do_not_depend_on_the_batch(tmp_path, checkpoints):
    """Batched longest-first with padding, back in corpus order: the same vectors as one at a time."""
    from pipeline.training.datamodule import ParallelSplit
    from pipeline.evaluation.checkpoints import load_task
    from pipeline.evaluation.test_set import load_test_set
    from pipeline.data.corpora import Corpus
    from pipeline.probing.features import features

    data = write_tiny_corpus(tmp_path / "prepared")
    corpus = Corpus(data, tmp_path, tmp_path, "", "models")
    test = load_test_set(corpus)
    split = ParallelSplit(data / "dev")
    indices = np.array([5, 0, 17, 3, 9])
    for name in MODELS:
        model = load_task(name, checkpoints / name / "best.ckpt", test, torch.device("cpu")).model
        batched = features(model, split, indices, torch.device("cpu"), batch=4)
        alone = torch.cat([features(model, split, indices[i : i + 1], torch.device("cpu")) for i in range(5)])
        assert batched.dtype == torch.float32 and batched.shape == (5, 32 if name.startswith("rnnenc") else 64)
        assert torch.allclose(batched, alone, atol=1e-5)


@pytest.mark.usefixtures("one_thread")
def test_synthetic_corpus_goes_to_its_own_reports(tmp_path, checkpoints, monkeypatch):
    from pipeline.stages.probe import probe

    project = _project(tmp_path, checkpoints, ["rnnenc-gru"], corpus="synthetic")
    monkeypatch.chdir(project)
    results = probe("synthetic", ["lm-gru", "rnnenc-gru"], PROBE)
    assert list(results) == ["rnnenc-gru"]
    assert json.loads((project / "reports/synthetic/probe.json").read_text()) == results
    assert (project / "reports/synthetic/probe_by_length.png").is_file()
    assert not (project / "reports/probe.json").exists()


def test_missing_checkpoint_is_a_one_line_error(tmp_path, checkpoints):
    project = _project(tmp_path, checkpoints, ["rnnenc-gru"], corpus="synthetic")
    params = {"experiments": {"synthetic_models": ["rnnenc-gru", "rnnsearch-lstm"]}}
    write_project_params(project, params)
    result = run_stage(project, "probe", "--corpus", "synthetic")
    assert_one_line_error(result, "checkpoints/synthetic/rnnsearch-lstm/best.ckpt: checkpoint not found",
                          "train it first")
    assert not (project / "reports/synthetic/probe.json").exists()


def test_nothing_to_probe_is_a_one_line_error(tmp_path):
    write_project_params(tmp_path, {"experiments": {"models": ["lm-gru"]}})
    result = run_stage(tmp_path, "probe")
    assert_one_line_error(result, "experiments.models", "nothing to probe")
