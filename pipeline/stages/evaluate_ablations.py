"""`evaluate_ablations` stage: decode and score the headline pair and every ablation variant, then test
what the ablations were built to test (docs/ablations.md; the analyses in ``pipeline.evaluation.ablations``).

    python -m pipeline.stages.evaluate_ablations   # checkpoints/{synthetic,ablations} → reports/ablations/

Every model the comparison needs is decoded again with ``ablations.beam_size`` (the headline pair too,
so all are compared under one decoder) on its task's test split: the controlled task, or its
reordered twin (data/reordered). Outputs under ``reports/ablations/``: ``metrics.json`` (per model,
the seeded claim, capacity, controls, the reordered claim), ``bleu_by_length.csv`` and
``figures/{seeds,capacity,controls,reordered}.png``, written to a temporary folder first and moved
into place at the end.
"""
from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path
from typing import Collection, Optional

import torch

from pipeline.config import Params, controlled_experiment, load_params
from pipeline.data.corpora import CORPORA
from pipeline.errors import UserError, stage_entry_point
from pipeline.evaluation import ablations, figures
from pipeline.evaluation.bleu_by_length import CSV_COLUMNS, ModelScores, score_model
from pipeline.evaluation.checkpoints import load_task
from pipeline.evaluation.decoding import BEAM, GREEDY, decode
from pipeline.evaluation.source_order import source_order_references
from pipeline.evaluation.test_set import TestSet, load_test_set
from pipeline.training.host_memory import keep_freed_memory
from pipeline.training.precision import resolve as resolve_precision

REPORTS = Path("reports/ablations")
ABLATION_CHECKPOINTS = Path("checkpoints/ablations")


def runs(params: Params) -> dict[str, dict[str, tuple[str, Path]]]:
    """Task → run name → (model, checkpoint): the headline pair and the variants, each on its task."""
    out: dict[str, dict[str, tuple[str, Path]]] = {
        "synthetic": {model: (model, CORPORA["synthetic"].checkpoints / model / "best.ckpt")
                      for model in ablations.HEADLINE}}
    for name, variant in params.ablations.variants.items():
        out.setdefault(variant.corpus, {})[name] = (variant.model, ABLATION_CHECKPOINTS / name / "best.ckpt")
    return out


def command(name: str) -> str:
    """How to train the run ``name``: a headline model's stage, or the variant's."""
    if name in ablations.HEADLINE:
        return f"python -m pipeline.stages.train {name} --corpus synthetic"
    return f"python -m pipeline.stages.train --variant {name}"


def score_runs(params: Params, task_runs: dict[str, tuple[str, Path]], corpus: str, source_order: Optional[str] = None,
               source_order_runs: Collection[str] = ()) -> tuple[dict[str, ModelScores], dict[str, ablations.Scored],
                                                                 TestSet, dict[str, ablations.Scored]]:
    """Decode and score every run on one task's test split: name → ModelScores, name → Scored, the test
    set, and for ``source_order_runs`` name → Scored against the references put back from the task's
    target order ``source_order`` into the source's word order (pipeline/evaluation/source_order.py)."""
    CORPORA[corpus].require_prepared()
    test = load_test_set(CORPORA[corpus])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(params.evaluate.precision, device.type)
    config, beam = params.evaluate, params.ablations.beam_size
    scores: dict[str, ModelScores] = {}
    scored: dict[str, ablations.Scored] = {}
    in_source_order: dict[str, ablations.Scored] = {}
    source_references = None if source_order is None else source_order_references(test.references[0], source_order)
    for name, (model, path) in task_runs.items():
        task = load_task(model, path, test, device)
        with precision.autocast(device.type):
            hypotheses, _ = decode(task, test, config, name, set(), beam)
        scores[name] = score_model(hypotheses, test.references, test.buckets, test.no_unk, test.lowercase,
                                   config.bootstrap_samples, config.seed)
        parameters = sum(p.numel() for p in task.parameters())
        scored[name] = ablations.Scored(scores[name].buckets, scores[name].statistics, parameters)
        if source_references is not None and name in source_order_runs:
            against_source = score_model(hypotheses, [source_references], test.buckets, test.no_unk, test.lowercase,
                                         config.bootstrap_samples, config.seed)
            in_source_order[name] = ablations.Scored(against_source.buckets, against_source.statistics, parameters)
        del task
    return scores, scored, test, in_source_order


def evaluate_ablations(params: Params) -> dict:
    by_task = runs(params)
    for task_runs in by_task.values():  # every checkpoint checked before the first decode
        for name, (_, path) in task_runs.items():
            if not path.is_file():
                raise UserError(f"{path}: checkpoint not found (train it first: {command(name)}, or `make ablations`)")
    torch.manual_seed(params.evaluate.seed)
    torch.set_flush_denormal(True)  # see pipeline.stages.evaluate
    keep_freed_memory()  # see pipeline.stages.evaluate
    REPORTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".evaluate-", dir=REPORTS))
    try:
        scores, scored, tests, in_source_order = {}, {}, {}, {}
        for corpus, task_runs in by_task.items():
            generated = params.synthetic.synthetic  # the controlled task's generator (None: read from files)
            order = generated.order if corpus == "synthetic" and generated is not None else None
            scores[corpus], scored[corpus], tests[corpus], in_source_order[corpus] = score_runs(
                params, task_runs, corpus, order, ablations.source_order_runs(params.ablations.variants))
        headline = controlled_experiment(params)  # the headline pair's own seed and |c|
        metrics = ablations.analyse(
            params.ablations.variants, scored["synthetic"], scored.get("reordered", {}), tests["synthetic"].buckets,
            tests["reordered"].buckets if "reordered" in tests else None, headline.train.seed,
            headline.model.context_size or headline.model.hidden_size, params.evaluate.bootstrap_samples,
            params.evaluate.seed, in_source_order["synthetic"])
        metrics["decoder"] = decoder_name(params)
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        rows = csv_rows(scores, decoder_name(params))
        write_rows(work / "bleu_by_length.csv", rows)
        draw(work / "figures", params, scores, tests)
        for name in ("metrics.json", "bleu_by_length.csv"):
            (work / name).replace(REPORTS / name)
        if (REPORTS / "figures").exists():
            shutil.rmtree(REPORTS / "figures")
        (work / "figures").replace(REPORTS / "figures")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The variants' own MLflow runs get their scores and curves (the headline pair's runs keep
    # evaluate's, under the pipeline's main decoder).
    from pipeline.tracking.results import log_evaluation

    for corpus, by_run in scores.items():
        variants = {name: s.metrics() for name, s in by_run.items() if name not in ablations.HEADLINE}
        log_evaluation(params.mlflow, corpus, variants, [row for row in rows if row["model"] in variants], [],
                       role="ablation")
    return metrics


def decoder_name(params: Params) -> str:
    return GREEDY if params.ablations.beam_size == 1 else BEAM


def csv_rows(scores: dict[str, dict[str, ModelScores]], decoder: str) -> list[dict]:
    """bleu_by_length.csv's rows with the task in front: one per task × run × bucket."""
    return [{"task": corpus, **{key: "" if value is None else value for key, value in bucket.row(name, decoder).items()}}
            for corpus, by_run in scores.items() for name, model_scores in by_run.items()
            for bucket in model_scores.buckets]


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("task", *CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def draw(folder: Path, params: Params, scores: dict[str, dict[str, ModelScores]], tests: dict[str, TestSet]) -> None:
    """BLEU by length per group of runs: seeds, |c|, the lag and size controls, the reordered task."""
    variants = params.ablations.variants
    synthetic = {name: s.buckets for name, s in scores["synthetic"].items()}
    limit = tests["synthetic"].train_max_len
    seeds = [*ablations.HEADLINE, *ablations.seed_variants(variants, ablations.HEADLINE[0]),
             *ablations.seed_variants(variants, ablations.HEADLINE[1])]
    groups = {
        "seeds": (seeds, "the headline pair, every training seed"),
        "capacity": ([ablations.HEADLINE[0], *ablations.capacity_variants(variants)], "RNNenc by |c|"),
        "controls": ([*ablations.HEADLINE, *ablations.control_variants(variants)], "time lag and size controls"),
    }
    for figure, (names, title) in groups.items():
        if len(names) > 1:
            figures.bleu_by_length({name: synthetic[name] for name in names}, folder / f"{figure}.png", limit,
                                   title=f"controlled task: {title}")
    if "reordered" in scores:
        figures.bleu_by_length({name: s.buckets for name, s in scores["reordered"].items()},
                               folder / "reordered.png", tests["reordered"].train_max_len,
                               title=f"reordered task ({params.ablations.reordered_order})")


@stage_entry_point
def main() -> None:
    params = load_params()
    metrics = evaluate_ablations(params)
    seeds = metrics["seeds"]
    print(f"seeds ({seeds['seeds']}): {seeds['verdict']}")
    for size, entry in metrics["capacity"].items():
        print(f"|c| = {size}: half-BLEU length {entry['half_bleu_length']}")
    for name, claim in metrics["controls"].items():
        print(f"{name}: {claim['verdict']}")
    if metrics["reordered"]:
        print(f"reordered: {metrics['reordered']['verdict']}")
    print(f"wrote {REPORTS}")


if __name__ == "__main__":
    main()
