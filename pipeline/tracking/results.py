"""What evaluation and the report log: test scores and BLEU-by-length curves per model run, and the
pipeline run's params, claim numbers, figures and table."""
from __future__ import annotations

import time
from pathlib import Path

from pipeline.config import MlflowConfig
from pipeline.tracking.runs import Tracker
from models.names import MODEL_NAMES
from pipeline.data.corpora import CORPORA
from pipeline.tracking.colours import RUN_COLOUR_TAG, run_colour
from pipeline.tracking.view import VIEW_TAG, X_METRIC, bleu_metric, comparison_view


def log_evaluation(config: MlflowConfig, corpus: str, metrics: dict, bucket_rows: list[dict],
                   figures: list[Path], role: str = "model") -> None:
    """Test scores into each model's child run. BLEU per bucket of the main decoder (beam search, or
    greedy when it is the only one) is the metric ``bleu_by_length`` with step = the bucket's lower
    bound, so MLflow's run comparison draws the BLEU-vs-length curves; greedy's, when beam search ran
    too, is ``bleu_by_length_greedy`` and its scores ``test_greedy_<name>``. metrics.json's ``"claim"``
    goes into both runs of each tested pair as ``claim_<decoder>_<key>`` (``shown`` as 0/1)."""
    from mlflow.entities import Metric

    tracker = Tracker(config)
    now = int(time.time() * 1000)
    decoders = {row.get("decoder") or "beam" for row in bucket_rows}
    main = "beam" if "beam" in decoders else "greedy"
    claims: dict[str, list[Metric]] = {}
    for decoder, by_cell in metrics.get("claim", {}).items():
        for cell, tested in by_cell.items():
            values = [Metric(f"claim_{decoder}_{key}", float(value), now, 0) for key, value in tested.items()
                      if isinstance(value, (int, float)) and key not in ("n_short", "n_long")]
            for family in ("rnnenc", "rnnsearch"):
                claims.setdefault(f"{family}-{cell}", []).extend(values)
    for model, scores in metrics.items():
        if model == "claim":
            continue
        run_id = tracker.model_run(corpus, model, "evaluate", role)
        values = [Metric(f"test_{name}", float(value), now, 0) for name, value in scores.items()
                  if isinstance(value, (int, float)) and name not in ("n", "no_unk_n")]
        values += [Metric(f"test_greedy_{name}", float(value), now, 0)
                   for name, value in scores.get("greedy", {}).items() if isinstance(value, (int, float))]
        for row in bucket_rows:
            if row["model"] == model and row.get("bleu") not in (None, ""):
                lower = int(str(row["bucket"]).split("-")[0].rstrip("+"))
                decoder = row.get("decoder") or main
                key = "bleu_by_length" if decoder == main else f"bleu_by_length_{decoder}"
                values.append(Metric(key, float(row["bleu"]), now, lower))
                if decoder == main:  # the saved view's curve of this corpus, over the source_words axis
                    values += [Metric(bleu_metric(corpus), float(row["bleu"]), now, lower),
                               Metric(X_METRIC, float(lower), now, lower)]
        values += claims.get(model, [])
        tracker.client.log_batch(run_id, metrics=values)
        tracker.client.set_tag(run_id, RUN_COLOUR_TAG, run_colour(corpus, model, MODEL_NAMES, tuple(CORPORA)))
        if "signature" in scores:
            tracker.client.set_tag(run_id, "sacrebleu.signature", scores["signature"])
        for figure in figures:
            if model in figure.name or figure.name.startswith("bleu_by_length"):
                tracker.client.log_artifact(run_id, str(figure), artifact_path="figures")


def _flat(prefix: str, value) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(f"{prefix}.{key}" if prefix else key, item).items()}
    return {prefix: str(value)}


def finish_pipeline(config: MlflowConfig, params: dict, experiments: dict[str, Path], corpus_titles: dict[str, str]) -> str:
    """The report stage's last step: the pipeline's run gets params, the claim's numbers of both
    experiments (``<corpus>_<decoder>_<cell>_<key>``, ``shown`` as 0/1, the verdict and what the fixed vector
    loses as tags), the
    BLEU-by-length figures and a table of every model × bucket, then ends FINISHED; the saved view
    that `make ui` opens is pointed at this pipeline's runs, a chart per corpus that has translation scores.
    ``experiments``: corpus → reports folder; ``corpus_titles``: corpus → what its chart is called."""
    import csv
    import json

    import pandas as pd
    from mlflow.entities import Metric, Param

    tracker = Tracker(config)
    run_id = tracker.parent_run()
    logged = tracker.client.get_run(run_id).data.params
    values = [Param(k, v[:6000]) for k, v in sorted(_flat("", params).items()) if k not in logged]
    for start in range(0, len(values), 100):  # MLflow takes at most 100 params per call
        tracker.client.log_batch(run_id, params=values[start:start + 100])
    now = int(time.time() * 1000)
    metrics, rows, charted = [], [], []
    for corpus, folder in experiments.items():
        claim = json.loads((folder / "metrics.json").read_text()).get("claim", {})
        for decoder, by_cell in claim.items():
            for cell, tested in by_cell.items():
                for name, value in tested.items():
                    if isinstance(value, (bool, int, float)):
                        metrics.append(Metric(f"{corpus}_{decoder}_{cell}_{name}", float(value), now, 0))
                tracker.client.set_tag(run_id, f"verdict.{corpus}.{decoder}.{cell}", tested.get("verdict", ""))
                tracker.client.set_tag(run_id, f"lost.{corpus}.{decoder}.{cell}", tested.get("lost", ""))
        with (folder / "bleu_by_length.csv").open(newline="") as handle:
            found = [{"corpus": corpus, **row} for row in csv.DictReader(handle)]
        rows += found
        if found:
            charted.append(corpus)
        figure = folder / "figures" / "bleu_by_length.png"
        if figure.exists():
            tracker.client.log_artifact(run_id, str(figure), artifact_path=f"figures/{corpus}")
    tracker.client.log_batch(run_id, metrics=metrics)
    if rows:
        table = pd.DataFrame(rows)[["corpus", "model", "decoder", "bucket", "n", "bleu", "ci_low", "ci_high", "bp",
                                     "bleu_nobp"]]
        numeric = ["n", "bleu", "ci_low", "ci_high", "bp", "bleu_nobp"]
        table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
        tracker.client.log_table(run_id, data=table, artifact_file="bleu_by_length.json")
    titles = {corpus: title for corpus, title in corpus_titles.items() if corpus in charted}
    tracker.client.set_experiment_tag(tracker.experiment_id, VIEW_TAG, comparison_view(tracker.key, titles))
    tracker.finish(run_id)
    return run_id
