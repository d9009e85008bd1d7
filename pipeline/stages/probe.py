"""`probe` stage: how many of the source's words can a linear probe read off the encoder's summary?

    python -m pipeline.stages.probe                     # data/prepared + checkpoints/bible → reports/
    python -m pipeline.stages.probe --corpus synthetic  # data/synthetic + checkpoints/synthetic → reports/synthetic/

For every ``rnnenc-<cell>`` of the corpus' model list the feature is its fixed vector c
(``encode(...)["context"]``, H numbers: all the decoder ever sees of the source); for every
``rnnsearch-<cell>`` the mean of its annotations over the real positions (2H numbers), the baseline:
a summary the attention model never had to make. A bag-of-words probe (``pipeline.probing.bow_probe``: one
logistic layer, the ``probe.labels`` most frequent source word types) is fitted on a seeded sample of the
train split, its threshold set on dev for a fixed pooled precision, and the recall of the source's
words is read per source-length bucket of the test split (the evaluate stage's buckets), with the
probe's ROC AUC per bucket beside it: threshold-free, so it does not rise just because long sentences
on a small vocabulary hold most of its words.

Outputs under the reports folder: ``probe.json`` (metric), ``probe_by_length.csv`` (plot) and
``probe_by_length.png`` (beside them, not in ``figures/``: that folder is a DVC output of the
evaluate stage, and DVC refuses an output inside another stage's output). Everything is written to
a temporary folder first and moved into place at the end. MLflow: per model, the metrics
``probe_recall_by_length`` and ``probe_auc_by_length`` (step = the bucket's lower bound), the
threshold and the figure.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from pipeline.probing import bow_probe
from pipeline.config import MlflowConfig, ProbeConfig, load_params
from pipeline.data.corpora import CORPORA, Corpus
from pipeline.errors import UserError, stage_entry_point
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.probing.features import probe_model, probed_models, train_sample
from pipeline.probing.summary import CSV, FIGURE, JSON, percent

FILES = (JSON, CSV, FIGURE)
CSV_COLUMNS = ("model", "bucket", "n", "recall", "precision", "auc", "words", "found", "predicted")


def _split(corpus: Corpus, name: str):
    from pipeline.training.datamodule import ParallelSplit

    try:
        return ParallelSplit(corpus.data / name)
    except FileNotFoundError as error:
        raise corpus.missing(error.filename) from None


def probe(corpus_name: str, models: list[str], config: ProbeConfig) -> dict:
    corpus = CORPORA[corpus_name]
    names = probed_models(models)
    if not models:  # the controlled experiment turned off (experiments.synthetic_models: [])
        return write_outputs(corpus, {}, f"no model probed: experiments.{corpus.models_key} is empty",
                             config.target_precision)
    if not names:
        raise UserError(f"experiments.{corpus.models_key} has no rnnenc-* or rnnsearch-* model: "
                        f"nothing to probe on the {corpus_name} corpus")
    corpus.require_prepared()
    paths = {name: corpus.checkpoints / name / "best.ckpt" for name in names}
    for name, path in paths.items():  # every checkpoint is checked before the first one is probed
        if not path.is_file():
            raise UserError(f"{path}: checkpoint not found (written by the train stage for {name}; train it first)")
    started = time.perf_counter()
    from pipeline.evaluation.checkpoints import load_task  # Lightning, sacrebleu: slow imports
    from pipeline.evaluation.test_set import load_test_set

    test = load_test_set(corpus)
    splits = {"train": _split(corpus, "train"), "dev": _split(corpus, "dev"), "test": test.split}
    source = splits["train"].src
    label_set = bow_probe.label_set(bow_probe.document_frequency(source.ids, source.offsets, len(test.src_vocab)),
                                    config.labels)
    sample = train_sample(len(splits["train"]), config.train_sentences, config.seed)
    labels = {"train": bow_probe.sentence_labels(label_set, [source[int(i)] for i in sample])}
    for name in ("dev", "test"):
        split = splits[name]
        labels[name] = bow_probe.sentence_labels(label_set, [split.src[i] for i in range(len(split))])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"probing {len(names)} models: {len(label_set)} source word types, {len(sample)} train / "
          f"{len(splits['dev'])} dev / {len(test)} test sentences, {config.epochs} epochs, "
          f"precision {config.target_precision} on dev", flush=True)

    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for name in names:
        model_started = time.perf_counter()
        task = load_task(name, paths[name], test, device)
        results[name] = {**probe_model(task, splits, labels, sample, test.buckets, device, config),
                         "labels": len(label_set), "train_sentences": int(len(sample))}
        timings[name] = time.perf_counter() - model_started
        del task

    write_outputs(corpus, results, f"{corpus.description().get('title', corpus_name)}: test set, a linear "
                                   "bag-of-words probe of the encoder's summary", config.target_precision)
    print_table(results, timings, config.target_precision)
    print(f"probed {len(names)} models on {corpus.data} in {time.perf_counter() - started:.1f} s → "
          f"{corpus.reports / JSON}", flush=True)
    return results


def write_outputs(corpus, results: dict[str, dict], title: str, target_precision: float) -> dict[str, dict]:
    """probe.json, probe_by_length.csv and the figure (one saying why, for no model), all or nothing."""
    reports = corpus.reports
    reports.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".probe-", dir=reports))
    try:
        from pipeline.evaluation.figures import nothing_to_draw
        from pipeline.probing.figures import probe_by_length

        (work / JSON).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        write_csv(work / CSV, results)
        if results:
            probe_by_length(results, work / FIGURE, target_precision, title=title)
        else:
            nothing_to_draw(work / FIGURE, title)
        for name in FILES:
            (work / name).replace(reports / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def write_csv(path: Path, results: dict[str, dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for name, entry in results.items():
            for bucket, row in entry["buckets"].items():
                writer.writerow({"model": name, "bucket": bucket,
                                 **{key: "" if value is None else value for key, value in row.items()}})


def print_table(results: dict[str, dict], timings: dict[str, float], target_precision: float) -> None:
    width = max(len(name) for name in results)
    print(f"recall (%) of the source's words at precision {target_precision} (threshold set on dev):")
    print(" " * width + "".join(f"{label:>7}" for label in BUCKET_LABELS) + "    all  dev P  time")
    for name, entry in results.items():
        cells = "".join(f"{percent(row['recall']):>7}" for row in entry["buckets"].values())
        print(f"{name:<{width}}{cells}{percent(entry['recall']):>7}{percent(entry['dev_precision']):>7}"
              f"{timings.get(name, 0.0):5.1f}s")


def log_probe(config: MlflowConfig, corpus: str, results: dict[str, dict], figure: Path) -> None:
    """Per model run: recall and AUC per bucket as ``probe_{recall,auc}_by_length`` (step = the bucket's lower
    bound, like ``bleu_by_length``), the threshold and overall scores, the figure; then the run is closed."""
    from mlflow.entities import Metric

    from pipeline.tracking.runs import Tracker

    tracker = Tracker(config)
    now = int(time.time() * 1000)
    for model, entry in results.items():
        run_id = tracker.model_run(corpus, model, "probe")
        values = [Metric(f"probe_{key}", float(entry[key]), now, 0)
                  for key in ("threshold", "dev_precision", "recall", "precision", "auc") if entry[key] is not None]
        for bucket, row in entry["buckets"].items():
            lower = int(bucket.split("-")[0].rstrip("+"))
            values += [Metric(f"probe_{key}_by_length", float(row[key]), now, lower)
                       for key in ("recall", "auc") if row[key] is not None]
        tracker.client.log_batch(run_id, metrics=values)
        tracker.client.log_artifact(run_id, str(figure), artifact_path="figures")
        tracker.finish(run_id)


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Probe each translation model's sentence vector for the source's words.")
    parser.add_argument("--corpus", choices=[name for name, c in CORPORA.items() if c.models_key], default="bible",
                        help="bible: data/prepared → reports/; synthetic: data/synthetic → reports/synthetic/")
    corpus = parser.parse_args().corpus
    params = load_params()  # validated before any work
    models = getattr(params.experiments, CORPORA[corpus].models_key)
    results = probe(corpus, list(models), params.probe)
    log_probe(params.mlflow, corpus, results, CORPORA[corpus].reports / FIGURE)


if __name__ == "__main__":
    main()
