"""A finished sweep: its summary (reports/tune/<model>.json), its table, and its record in MLflow."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.sweeps.tuned import describe

CORPUS = "bible"  # sweeps run on the Bible corpus
MODES = {"dev_loss": "min", "dev_bleu": "max"}


def trial_id_of(result) -> str:
    return str(result.metrics.get("trial_id") or Path(result.path).name.split("_")[2])


def summarise(model: str, experiment: str, results, params: Params, wall_seconds: float) -> dict[str, Any]:
    metric, mode = params.tune.metric, MODES[params.tune.metric]
    trials = []
    for result in results:
        history = result.metrics_dataframe
        values = [] if history is None or metric not in history else [v for v in history[metric] if math.isfinite(v)]
        final = {k: round(float(v), 5) for k, v in result.metrics.items()
                 if k in ("dev_loss", "dev_ppl", "dev_bleu", "train_loss_epoch") and v is not None}
        iterations = int(result.metrics.get("training_iteration", 0) or 0)
        status = ("error" if result.error else
                  "completed" if iterations >= params.tune.epochs else "stopped early (ASHA)")
        trials.append({
            "trial_id": trial_id_of(result), "config": result.config, "status": status, "epochs": iterations,
            "final": final, "best": (min(values) if mode == "min" else max(values)) if values else None,
            "minutes": round(float(result.metrics.get("time_total_s", 0.0) or 0.0) / 60, 2),
            "error": str(result.error).strip().splitlines()[-1] if result.error else None,
        })
    trials.sort(key=lambda t: t["trial_id"])
    scored = [t for t in trials if t["best"] is not None]
    best = (min if mode == "min" else max)(scored, key=lambda t: t["best"]) if scored else None
    return {
        "model": model, "corpus": CORPUS, "swept": True, "metric": metric, "mode": mode,
        "best": {"trial_id": best["trial_id"], "config": best["config"], metric: best["best"]} if best else None,
        "trials": trials,
        "failed": sum(t["status"] == "error" for t in trials),
        "stopped_early": sum(t["status"].startswith("stopped") for t in trials),
        "wall_minutes": round(wall_seconds / 60, 2),
        # Trial time includes waiting for the trial's workers to get their CPUs/GPUs.
        "trial_minutes": round(sum(t["minutes"] for t in trials), 2),
        "max_concurrent_trials": params.tune.max_concurrent_trials,
        "resources_per_trial": params.tune.resources_per_trial.model_dump(),
        "experiment_path": experiment,
    }


def print_summary(summary: dict[str, Any]) -> None:
    metric = summary["metric"]
    print(f"\nsweep of {summary['model']}: {len(summary['trials'])} trials, {summary['failed']} failed, "
          f"{summary['stopped_early']} stopped early, {summary['wall_minutes']} min wall")
    print(f"{'trial':<12} {'status':<22} {'epochs':>6} {metric:>9}  config / error")
    for trial in summary["trials"]:
        value = f"{trial['best']:.4f}" if trial["best"] is not None else "-"
        detail = trial["error"] or describe(trial["config"])
        print(f"{trial['trial_id']:<12} {trial['status']:<22} {trial['epochs']:>6} {value:>9}  {detail}")
    if summary["best"]:
        print(f"best: trial {summary['best']['trial_id']} {metric} {summary['best'][metric]:.4f} "
              f"{summary['best']['config']}")


def record(tracker, sweep_run: str, summary: dict[str, Any]) -> None:
    """The sweep's outcome in MLflow: best config and value on the sweep run, final status per trial."""
    from mlflow.entities import Metric, Param

    from pipeline.tracking.runs import ROLE, TRIAL

    now = int(time.time() * 1000)
    metrics = [Metric(name, float(summary[name]), now, 0) for name in ("failed", "stopped_early", "wall_minutes")]
    params = []
    if summary["best"]:
        metrics.append(Metric(f"best_{summary['metric']}", float(summary["best"][summary["metric"]]), now, 0))
        params = [Param(f"best.{k}", str(v)) for k, v in sorted(summary["best"]["config"].items())]
    tracker.client.log_batch(sweep_run, metrics=metrics, params=params)
    status = {trial["trial_id"]: trial["status"] for trial in summary["trials"]}
    for run in tracker.client.search_runs([tracker.experiment_id], f"tags.`{ROLE}` = 'trial' and "
                                          f"tags.`mlflow.parentRunId` = '{sweep_run}'"):
        trial = status.get(run.data.tags[TRIAL])
        if trial:
            tracker.client.set_tag(run.info.run_id, "tune.status", trial)
            tracker.client.set_terminated(run.info.run_id, "FAILED" if trial == "error" else "FINISHED")
    tracker.client.set_terminated(sweep_run)
