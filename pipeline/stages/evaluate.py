"""`evaluate` stage: decode the test split with every trained model and score it (docs/evaluation.md).

    python -m pipeline.stages.evaluate                     # data/prepared + checkpoints/bible → reports/
    python -m pipeline.stages.evaluate --corpus synthetic  # data/synthetic + checkpoints/synthetic → reports/synthetic/

Translation models (rnnenc-*, rnnsearch-*) decode twice, with greedy search and with beam search
(``evaluate.beam_size``; 1 = greedy only), and each decode is scored with sacrebleu on detokenized
text: overall, on the no-UNK subset and against every reference (Bahdanau et al. 2014 Table 1), and
per source-length bucket with a bootstrap interval and BLEU's parts (Bahdanau et al. 2014 Fig. 2,
Cho et al. 2014 Fig. 4; see ``pipeline.evaluation.bleu_by_length``). Each rnnenc/rnnsearch pair of a cell is
then tested for the bottleneck (``pipeline.evaluation.claim``). RNNsearch models also draw attention heatmaps
(Bahdanau Fig. 3) from the beam decode. Language models (lm-*) get test perplexity and a few samples.

The main decoder is beam search (greedy when beam_size is 1): its scores are metrics.json's per-model
keys (so ``dvc metrics diff`` compares like with like), the BLEU-by-length figure, samples.json and
``hypotheses/<model>.txt``. Greedy's scores are nested under the model's ``"greedy"`` key and its
output is ``hypotheses/<model>.greedy.txt`` (when beam search ran too). metrics.json's ``"claim"``
holds the test of each pair per decoder; ``bleu_by_length.csv`` has one row per model × decoder × bucket.

Outputs under the reports folder: ``metrics.json``, ``bleu_by_length.csv``, ``samples.json``,
``hypotheses/`` (one line per test sentence, corpus order) and ``figures/``
(``bleu_by_length.png``, ``attention_<model>_<k>.png``). Everything is written to a temporary
folder first and moved into place at the end: a failed run leaves the previous outputs as they were.
Only checkpoint files are read from training (``checkpoints/<corpus>/<model>/best.ckpt``), not its code.
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

from models.names import parse_model_name
from pipeline.config import EvaluateConfig, load_params
from pipeline.data.corpora import CORPORA
from pipeline.errors import UserError, stage_entry_point
from pipeline.evaluation import claim, figures
from pipeline.evaluation.bleu_by_length import CSV_COLUMNS, ModelScores, score_model
from pipeline.evaluation.checkpoints import load_task
from pipeline.evaluation.decoding import (GREEDY, decode, decoders, example_indices, heatmap_indices, lm_samples,
                                          perplexity, token_labels)
from pipeline.evaluation.test_set import load_test_set
from pipeline.training.host_memory import keep_freed_memory
from pipeline.training.precision import resolve as resolve_precision


FILES = ("metrics.json", "bleu_by_length.csv", "samples.json")  # replaced whole
HYPOTHESES, FIGURES = "hypotheses", "figures"
OWN_FIGURES = ("bleu_by_length.png", "attention_*.png")  # other stages may put figures beside these
GREEDY_KEYS = ("bleu", "bleu_no_unk", "bleu_multi_ref")  # of greedy's scores, nested in metrics.json



def write_csv(path: Path, scores: dict[str, dict[str, ModelScores]]) -> None:
    """One row per model × decoder × bucket; ``scores`` is decoder → model → scores."""
    models = list(dict.fromkeys(name for by_model in scores.values() for name in by_model))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name in models:
            for decoder, by_model in scores.items():
                for bucket in by_model[name].buckets:
                    writer.writerow({key: "" if value is None else value
                                     for key, value in bucket.row(name, decoder).items()})


def publish(work: Path, reports: Path) -> None:
    """Move the finished outputs into ``reports``, replacing only what this stage owns."""
    reports.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (work / name).replace(reports / name)
    if (reports / HYPOTHESES).exists():
        shutil.rmtree(reports / HYPOTHESES)
    (work / HYPOTHESES).replace(reports / HYPOTHESES)
    (reports / FIGURES).mkdir(exist_ok=True)
    for pattern in OWN_FIGURES:
        for stale in (reports / FIGURES).glob(pattern):
            stale.unlink()
    for figure in (work / FIGURES).iterdir():
        figure.replace(reports / FIGURES / figure.name)


def evaluate(corpus_name: str, models: list[str], config: EvaluateConfig) -> dict:
    corpus = CORPORA[corpus_name]
    corpus.require_prepared()
    # Every checkpoint is checked before the first one decodes: no half run for a missing file.
    paths = {name: corpus.checkpoints / name / "best.ckpt" for name in models}
    for name, path in paths.items():
        if not path.is_file():
            raise UserError(f"{path}: checkpoint not found (written by the train stage for {name}; train it first)")
    test = load_test_set(corpus)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(config.precision, device.type)
    print(f"decoding precision: {precision.value} ({precision.reason})", flush=True)
    torch.manual_seed(config.seed)
    # Long beam searches drive some activations into denormal floats, which x86 CPUs compute ~100×
    # slower: a random-init RNNsearch took 39 s instead of 1.4 s for 16 sentences of 85 words.
    # Flushing them to zero changes no score.
    torch.set_flush_denormal(True)
    keep_freed_memory()  # decoding's large tensors reuse the heap (pipeline.training.host_memory)

    reports = corpus.reports
    reports.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".evaluate-", dir=reports))
    try:
        (work / HYPOTHESES).mkdir()
        (work / FIGURES).mkdir()
        metrics: dict[str, dict] = {}
        search = decoders(config)
        primary = next(iter(search))
        scores: dict[str, dict[str, ModelScores]] = {decoder: {} for decoder in search}
        samples: dict[str, dict] = {"language_models": {}, "translations": {}}
        examples = example_indices(test)
        timings: dict[str, float] = {}
        for name in models:
            family, _ = parse_model_name(name)
            task = load_task(name, paths[name], test, device)
            started = time.perf_counter()
            with precision.autocast(device.type):  # decoding and perplexity
                if family == "lm":
                    metrics[name] = {"ppl": round(perplexity(task, test, config, name), 2)}
                    samples["language_models"][name] = lm_samples(task, test, config)
                else:
                    heatmaps = heatmap_indices(test, config) if family == "rnnsearch" else []
                    outputs, attention = {}, {}
                    for decoder, beam_size in search.items():  # heatmaps from the main (beam) decode
                        outputs[decoder], found = decode(task, test, config, name,
                                                         set(heatmaps) if decoder == primary else set(), beam_size)
                        attention.update(found)
                        suffix = "" if decoder == primary else f".{decoder}"
                        (work / HYPOTHESES / f"{name}{suffix}.txt").write_text(
                            "".join(h + "\n" for h in outputs[decoder]), encoding="utf-8")
                        scores[decoder][name] = score_model(outputs[decoder], test.references, test.buckets,
                                                            test.no_unk, test.lowercase, config.bootstrap_samples,
                                                            config.seed)
                    metrics[name] = scores[primary][name].metrics()
                    if primary != GREEDY:
                        greedy = scores[GREEDY][name].metrics()
                        metrics[name][GREEDY] = {key: greedy[key] for key in GREEDY_KEYS}
                    hypotheses = outputs[primary]
                    samples["translations"][name] = {
                        kind: [{"index": i, "source": test.sources[i], "reference": test.references[0][i],
                                "hypothesis": hypotheses[i]} for i in indices]
                        for kind, indices in examples.items()
                    }
                    for k, index in enumerate(heatmaps):
                        tokens, weights = attention[index]
                        figures.attention_heatmap(
                            weights, token_labels(test.src_vocab, test.split.src[index]),
                            token_labels(test.tgt_vocab, tokens), work / FIGURES / f"attention_{name}_{k}.png",
                            title=f"{name}, test sentence {index} ({int(test.src_words[index])} words)")
            timings[name] = time.perf_counter() - started
            del task
        if not models:  # the controlled experiment turned off: empty outputs, so DVC and the report go on
            figures.nothing_to_draw(work / FIGURES / "bleu_by_length.png",
                                    f"no model evaluated: experiments.{corpus.models_key} is empty")
        if scores[primary]:
            figures.bleu_by_length({name: s.buckets for name, s in scores[primary].items()},
                                   work / FIGURES / "bleu_by_length.png", test.train_max_len,
                                   title=f"{corpus.description().get('title', corpus_name)}: test set, "
                                         f"{'greedy search' if primary == GREEDY else f'beam {config.beam_size}'}")
            tested = claim.judge({decoder: {name: s.statistics for name, s in by_model.items()}
                                  for decoder, by_model in scores.items()},
                                 test.buckets, config.bootstrap_samples, config.seed)
            if any(tested.values()):
                metrics["claim"] = tested
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (work / "samples.json").write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_csv(work / "bleu_by_length.csv", scores)
        publish(work, reports)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, seconds in timings.items():
        summary = ", ".join(f"{k} {v}" for k, v in metrics[name].items() if k in ("bleu", "bleu_no_unk", "ppl"))
        if GREEDY in metrics[name]:
            summary += f" (greedy: bleu {metrics[name][GREEDY]['bleu']})"
        print(f"{name}: {summary} ({seconds:.1f} s)")
    for decoder, by_cell in metrics.get("claim", {}).items():
        for cell, tested in by_cell.items():
            print(f"claim, {decoder}, {cell}: {tested['verdict']}")
    print(f"evaluated {len(test)} test sentences of {corpus.data} → {reports}")
    return metrics


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Decode and score the test split with every trained model.")
    parser.add_argument("--corpus", choices=[name for name, c in CORPORA.items() if c.models_key], default="bible",
                        help="bible: data/prepared → reports/; synthetic: data/synthetic → reports/synthetic/")
    corpus = parser.parse_args().corpus
    params = load_params()  # validated before any work
    models = getattr(params.experiments, CORPORA[corpus].models_key)
    metrics = evaluate(corpus, list(models), params.evaluate)
    reports = CORPORA[corpus].reports
    with (reports / "bleu_by_length.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    figures_written = sorted((reports / FIGURES).glob("*.png"))
    from pipeline.tracking.results import log_evaluation

    log_evaluation(params.mlflow, corpus, metrics, rows, figures_written)


if __name__ == "__main__":
    main()
