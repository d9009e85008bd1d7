"""One Ray Tune trial: a Ray Train run (``TorchTrainer``) of the training stage's Lightning code.

Ray 2.60 runs Train V2, where a Tuner cannot take a TorchTrainer directly (docs/decisions.md, Ray Train V2): Tune runs
``run_trial`` (a function trainable holding no resources of its own), which builds and fits a
``TorchTrainer`` of ``resources_per_trial.workers`` processes. Each process runs ``train_worker``:
the same LightningModule and DataModule as ``pipeline.stages.train`` (``build_task_and_data``), wired to
Ray through RayDDPStrategy / RayLightningEnvironment / ``prepare_trainer``. RayTrainReportCallback
reports each epoch's metrics (dev loss, ppl, BLEU) and Ray Tune's TuneReportCallback forwards them
to Tune, where ASHA compares trials at every epoch.

MLflow: ``run_trial`` finds or creates the trial's child run under the sweep's run (a retried trial
gets the same run back), and rank 0's Lightning MLFlowLogger writes the per-epoch metrics into it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Tests set this to a marker file's path: a trial whose marker does not exist yet creates it and
# raises, so its first attempt fails and the retry succeeds (FailureConfig).
FAIL_ONCE_MARKER = "BOTTLENECK_TEST_FAIL_TRIAL_ONCE"


def train_worker(setup: dict[str, Any]) -> None:
    """One Ray Train worker (one DDP rank) of one trial."""
    import pytorch_lightning as pl
    import ray.train
    import torch
    from pytorch_lightning.callbacks import TQDMProgressBar
    from pytorch_lightning.loggers import MLFlowLogger
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback, prepare_trainer

    from pipeline.config import Params
    from pipeline.training.dev_bleu import DevBleu
    from pipeline.training.cuda import apply_cuda_settings
    from pipeline.training.host_memory import keep_freed_memory
    from pipeline.training.precision import resolve as resolve_precision
    from pipeline.training.build import build_task_and_data

    params = Params.model_validate(setup["params"])
    data_dir = Path(setup["data_dir"])
    if not (data_dir / "stats.json").exists():
        raise FileNotFoundError(f"{data_dir}: no prepared corpus on node {ray.util.get_node_ip_address()} "
                                "(a cluster needs the project on storage every node sees, see README)")
    torch.set_flush_denormal(True)  # see pipeline.stages.train
    keep_freed_memory()  # see pipeline.stages.train
    pl.seed_everything(params.train.seed, workers=True, verbose=False)
    task, datamodule = build_task_and_data(setup["model"], data_dir, params)

    tune = params.tune
    device = "cuda" if tune.resources_per_trial.gpus_per_worker else "cpu"
    precision = resolve_precision(params.train.precision, device)
    rank_zero = ray.train.get_context().get_world_rank() == 0
    logger = MLFlowLogger(experiment_name=params.mlflow.experiment, tracking_uri=setup["tracking_uri"],
                          run_id=setup["run_id"]) if rank_zero else False
    callbacks: list[pl.Callback] = [RayTrainReportCallback(), TQDMProgressBar(refresh_rate=20)]
    if tune.metric == "dev_bleu":
        callbacks.append(DevBleu(data_dir, params.train.dev_bleu_sentences, 1, params.train.beam_size))
    trainer = pl.Trainer(
        accelerator="gpu" if tune.resources_per_trial.gpus_per_worker else "cpu", devices="auto",
        strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()], precision=precision.value,
        max_epochs=tune.epochs, limit_train_batches=tune.batches_per_epoch or 1.0, use_distributed_sampler=False,
        callbacks=callbacks, logger=logger, enable_checkpointing=False, num_sanity_val_steps=0,
        log_every_n_steps=10, **apply_cuda_settings(device),
    )
    trainer = prepare_trainer(trainer)
    trainer.fit(task, datamodule=datamodule)


def run_trial(config: dict[str, Any], *, sweep: dict[str, Any]) -> None:
    """Tune's function trainable: ``config`` is this trial's sample of the search space
    (``{"train.lr": …, "model.hidden_size": …}``), ``sweep`` what every trial shares."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipeline.config import MlflowConfig, Params, overlay
    from pipeline.tracking.runs import Tracker

    trial_id = tune.get_context().get_trial_id()
    marker = os.environ.get(FAIL_ONCE_MARKER)
    if marker and not Path(f"{marker}.{trial_id}").exists():
        Path(f"{marker}.{trial_id}").touch()
        raise RuntimeError(f"injected failure of trial {trial_id} (first attempt)")

    params = overlay(Params.model_validate(sweep["params"]), config)
    tracker = Tracker(MlflowConfig(tracking_uri=sweep["tracking_uri"], experiment=params.mlflow.experiment))
    run_id = tracker.trial_run(sweep["sweep_run"], trial_id, config)
    resources = params.tune.resources_per_trial
    use_gpu = resources.gpus_per_worker > 0
    setup = {"params": params.model_dump(mode="json"), "model": sweep["model"], "data_dir": sweep["data_dir"],
             "run_id": run_id, "tracking_uri": sweep["tracking_uri"]}
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": resources.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        train_worker, train_loop_config=setup,
        scaling_config=ray.train.ScalingConfig(num_workers=resources.workers, use_gpu=use_gpu,
                                               resources_per_worker=per_worker),
        run_config=train_run_config(f"{sweep['name']}-{trial_id}", sweep["train_storage"], [TuneReportCallback()]),
    )
    try:
        trainer.fit()
    finally:
        tracker.client.set_terminated(run_id)


def train_run_config(name: str, storage: str, callbacks: list):
    """A trial's Ray Train RunConfig. RayTrainReportCallback writes a checkpoint every epoch that
    nothing reads back (the train stage retrains the chosen config): keep only the latest of each
    trial, not all of them (~1 GB each at paper size)."""
    import ray.train

    return ray.train.RunConfig(name=name, storage_path=storage, callbacks=callbacks,
                               checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1))
