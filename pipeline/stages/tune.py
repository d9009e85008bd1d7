"""`tune` stage: a Ray Tune sweep of one model on the Bible corpus, with ASHA early stopping.

    python -m pipeline.stages.tune lm-gru

Writes ``reports/tune/<model>.json``: the best config (``best.config``, keys like ``train.lr``), its
dev metrics, and every trial's config, final metrics, status and error. A model that is not in
``tune.models`` gets ``"best": null`` without starting Ray, so each ``train@<model>`` stage can depend
on its own file; with ``train.use_tuned: true`` it trains with the best config.

Trials run ``pipeline.sweeps.trial.run_trial`` (a Ray Train TorchTrainer of the training stage's Lightning
code) on a local Ray instance, or on the cluster at ``cluster.address`` / ``$RAY_ADDRESS``. A crashed
trial is retried (``tune.max_failures``); an interrupted sweep resumes where it stopped when the stage
runs again with the same params (``Tuner.restore``): the sweep's directory is keyed by everything
that decides its result. MLflow gets a sweep run, nested in the pipeline's run, with one child run
per trial that holds the trial's config and per-epoch Lightning metrics.
"""
from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.config import Params, load_params, model_argument
from pipeline.data.corpora import CORPORA
from pipeline.errors import UserError, stage_entry_point
from pipeline.sweeps.cluster import Interruption, check_resources, connect
from pipeline.sweeps.results import CORPUS, MODES, print_summary, record, summarise
from pipeline.sweeps.space import search_space, sweep_key
from pipeline.sweeps.tuned import TUNE_REPORTS


def sweep(model: str, params: Params) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from pipeline.tracking.runs import Tracker

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
        from pipeline.sweeps.trial import run_trial

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
    model_argument(arguments.model)
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
