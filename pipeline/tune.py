"""`tune` stage: a Ray Tune sweep of one model on the Bible corpus, with ASHA early stopping.

    python -m pipeline.tune lm-gru

Writes ``reports/tune/<model>.json``: the best config (``best.config``, keys like ``train.lr``), its
dev metrics, and every trial's config, final metrics, status and error. A model that is not in
``tune.models`` gets ``"best": null`` without starting Ray, so each ``train@<model>`` stage can depend
on its own file; with ``train.use_tuned: true`` it trains with the best config.

Trials run ``pipeline.trial.run_trial`` (a Ray Train TorchTrainer of the training stage's Lightning
code) on a local Ray instance, or on the cluster at ``cluster.address`` / ``$RAY_ADDRESS``. A crashed
trial is retried (``tune.max_failures``); an interrupted sweep resumes where it stopped when the stage
runs again with the same params (``Tuner.restore``): the sweep's directory is keyed by everything
that decides its result. MLflow gets a sweep run, nested in the pipeline's run, with one child run
per trial that holds the trial's config and per-epoch Lightning metrics.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.config import Dimension, Params, load_params
from pipeline.errors import ConfigError, UserError, stage_entry_point
from pipeline.corpora import CORPORA
from pipeline.train import MODEL_CODE
from pipeline.tuned import TUNE_REPORTS, describe

PROJECT = Path(__file__).resolve().parents[1]  # the code: Ray workers import it from here
CORPUS = "bible"
MODES = {"dev_loss": "min", "dev_bleu": "max"}


def search_space(dimensions: dict[str, Dimension]) -> dict[str, Any]:
    """params' search space as Ray Tune samplers."""
    from ray import tune

    space = {}
    for key, dimension in dimensions.items():
        if dimension.choice is not None:
            space[key] = tune.choice(dimension.choice)
        elif dimension.loguniform is not None:
            space[key] = tune.loguniform(*dimension.loguniform)
        elif dimension.uniform is not None:
            space[key] = tune.uniform(*dimension.uniform)
        else:
            space[key] = tune.randint(*dimension.randint)  # type: ignore[misc]
    return space


def sweep_key(model: str, params: Params, data_dir: Path) -> str:
    """Identifies a sweep: a rerun with the same key resumes it, any change starts a new one."""
    decisive = [model, params.tune.model_dump(mode="json"), params.model.model_dump(mode="json"),
                params.train.model_dump(mode="json")]
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode())
    for path in [data_dir / "stats.json", data_dir / "corpus.json", *sorted(MODEL_CODE.glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def connect(params: Params) -> str:
    """Start or join Ray; returns where. Workers import this project's code from PROJECT, or, inside
    a Ray job (pipeline.submit), from the job's working directory on every node."""
    import ray

    address = params.cluster.address or os.environ.get("RAY_ADDRESS")
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:  # a job's entrypoint: keep the job's runtime_env
        ray.init(address=address or "auto")
        return f"the cluster of this Ray job ({address or 'auto'})"
    environment = {"PYTHONPATH": str(PROJECT)}
    for name in ("MLFLOW_TRACKING_URI", "BOTTLENECK_TEST_FAIL_TRIAL_ONCE"):
        if name in os.environ:
            environment[name] = os.environ[name]
    if address:
        try:
            ray.init(address=address, runtime_env={"env_vars": environment})
        except ConnectionError as error:
            raise UserError(f"cluster.address / RAY_ADDRESS {address!r}: cannot connect to Ray "
                            f"({str(error).splitlines()[0]})") from None
        return address
    # The dashboard (loopback) serves the state API that Ray Train uses to free the placement groups
    # of trials ASHA stopped; without it their CPUs stay reserved and later trials never start.
    ray.init(runtime_env={"env_vars": environment})
    return "local"


def check_resources(params: Params) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so before any starts."""
    import ray

    resources = params.tune.resources_per_trial
    available = ray.cluster_resources()
    for name, per_worker in (("GPU", resources.gpus_per_worker), ("CPU", resources.cpus_per_worker)):
        needed = resources.workers * per_worker
        if needed > available.get(name, 0.0):
            raise ConfigError(f"params.yaml: tune.resources_per_trial: a trial needs {needed:g} {name}s "
                              f"({resources.workers} workers × {per_worker:g}) but the Ray cluster has "
                              f"{available.get(name, 0.0):g}")


class Interruption:
    """Ctrl-C or SIGTERM during ``Tuner.fit``: ask Tune to save its state and stop (its SIGUSR1
    handler), and remember that it happened. Tune's own SIGINT handler would stop it the same way
    but then return as if the sweep had finished."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __enter__(self) -> "Interruption":
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.previous = {number: signal.signal(number, self.handle) for number in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, number: int, frame) -> None:
        self.signal = signal.Signals(number).name
        self.__exit__()  # a second Ctrl-C stops at once
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):  # Tune's loop has not started yet
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, *exception) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


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


def sweep(model: str, params: Params) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from pipeline.tracking import Tracker

    CORPORA[CORPUS].require_prepared()
    data_dir = CORPORA[CORPUS].data
    config = params.tune
    family = model.split("-")[0]
    key = sweep_key(model, params, data_dir)
    name = f"{model}-{key}"
    storage = params.cluster.storage_path or str(Path("ray_results").resolve())

    experiment = f"{storage}/{name}"
    where = connect(params)
    try:
        check_resources(params)
        resume = tune.Tuner.can_restore(experiment)
        tracker = Tracker(params.mlflow)  # creates the experiment here, on the driver, before any trial
        sweep_run = tracker.sweep_run(CORPUS, model, key, resume)
        print(f"sweeping {model} on Ray ({where}): {config.num_samples} trials, at most "
              f"{config.max_concurrent_trials} at once, {config.epochs} epochs each; results in {experiment}")
        shared = {"params": params.model_dump(mode="json"), "model": model, "data_dir": str(data_dir.resolve()),
                  "sweep_run": sweep_run, "tracking_uri": tracker.uri, "name": name, "train_storage": f"{storage}/{name}-train"}
        from pipeline.trial import run_trial

        # The function only drives a TorchTrainer whose workers hold the CPUs/GPUs (docs/decisions.md,
        # Ray Train V2). Ray refuses an all-zero request, so it asks for one byte of (logical) memory
        # instead of a CPU.
        trainable = tune.with_resources(partial(run_trial, sweep=shared), {"cpu": 0, "memory": 1})
        if resume:
            print(f"resuming the interrupted sweep in {experiment}")
            tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=search_space(config.search_space[family]),  # type: ignore[index]
                tune_config=tune.TuneConfig(
                    metric=config.metric, mode=MODES[config.metric], num_samples=config.num_samples,
                    scheduler=ASHAScheduler(max_t=config.epochs, grace_period=config.grace_period,
                                            reduction_factor=config.reduction_factor),
                    # The limit goes to the generator: Tune ignores TuneConfig.max_concurrent_trials
                    # next to a SearchGenerator (and then starts every trial at once).
                    search_alg=BasicVariantGenerator(random_state=config.seed,
                                                     max_concurrent=config.max_concurrent_trials)),
                run_config=tune.RunConfig(name=name, storage_path=storage,
                                          failure_config=tune.FailureConfig(max_failures=config.max_failures)),
            )
        started = time.monotonic()
        with Interruption() as interruption:
            results = tuner.fit()
        if interruption.signal:  # Tune saved its state and returned: half a sweep is not a result
            raise UserError(f"the sweep of {model} was interrupted ({interruption.signal}); run the stage "
                            f"again to resume it ({experiment})")
        summary = summarise(model, experiment, results, params, time.monotonic() - started)
    finally:
        ray.shutdown()
    record(tracker, sweep_run, summary)
    return summary


def record(tracker, sweep_run: str, summary: dict[str, Any]) -> None:
    """The sweep's outcome in MLflow: best config and value on the sweep run, final status per trial."""
    from mlflow.entities import Metric, Param

    from pipeline.tracking import ROLE, TRIAL

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


def write(model: str, summary: dict[str, Any]) -> Path:
    TUNE_REPORTS.mkdir(parents=True, exist_ok=True)
    path = TUNE_REPORTS / f"{model}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    temporary.replace(path)
    return path


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Sweep one model with Ray Tune (see params.yaml: tune, cluster).")
    parser.add_argument("model", help="a model of experiments.models; swept when it is in tune.models")
    arguments = parser.parse_args()
    params = load_params()
    from models.registry import MODEL_NAMES

    if arguments.model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {arguments.model!r} (allowed: {', '.join(MODEL_NAMES)})")
    if arguments.model not in params.tune.models:
        path = write(arguments.model, {"model": arguments.model, "swept": False, "best": None})
        print(f"{arguments.model} is not in tune.models: not swept ({path})")
        return
    summary = sweep(arguments.model, params)
    print_summary(summary)
    path = write(arguments.model, summary)
    if summary["best"] is None:
        raise UserError(f"{path}: every trial of the sweep of {arguments.model} failed (errors listed above)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
