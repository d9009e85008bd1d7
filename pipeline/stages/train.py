"""`train` stage: fit one architecture on a prepared corpus with a Lightning Trainer built from params.

    python -m pipeline.stages.train rnnsearch-gru                      # the Bible corpus (data/prepared)
    python -m pipeline.stages.train rnnsearch-gru --corpus synthetic   # the controlled corpus
    python -m pipeline.stages.train --variant rnnenc-gru-c64           # an ablation (params.yaml: ablations)

Writes ``checkpoints/<corpus>/<model>/{best,last}.ckpt`` (best = lowest dev loss, what evaluate
uses; last = saved every ``train.checkpoint_every_minutes`` and at the end) and
``reports/train/<corpus>/<model>.{json,csv}`` (summary metric, per-epoch curve). A run that was
interrupted, even by SIGKILL, resumes from its newest checkpoint when started again with the same
model, data and optimisation settings. The budget is epochs (``train.epochs`` by corpus and family),
so a run gives the same checkpoints on any machine; ``train.time_limit_minutes`` is only a safety
limit, counted across resumes (Lightning's Timer state lives in the checkpoint), that fails the stage.
Devices > 1 trains with DDP, one process per device; inside a SLURM job (`make slurm`) the ranks are
started by srun over ``train.num_nodes`` nodes and SIGUSR1 checkpoints and requeues the job
(pipeline/training/srun.py, requeue.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Optional

from pipeline.config import Params, controlled_experiment, load_params, model_argument, overlay
from pipeline.data.corpora import CORPORA
from pipeline.errors import ConfigError, UserError, stage_entry_point
from pipeline.training import srun


def train(model: str, corpus: str, params: Params, variant: Optional[str] = None) -> dict[str, Any]:
    """Fit ``model`` on ``corpus``; ``variant`` names an ablations.variants entry trained instead
    (its settings laid over the controlled experiment's, its outputs under checkpoints/ablations and
    reports/ablations/train)."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from pytorch_lightning.loggers import MLFlowLogger
    from pytorch_lightning.plugins.environments import SLURMEnvironment
    from pytorch_lightning.utilities import rank_zero_only

    from models.names import parse_model_name
    from pipeline.training.build import build_task_and_data
    from pipeline.training.callbacks import EpochHistory, SafetyStop, StepTimer, TimedCheckpoint
    from pipeline.training.checkpoints import (RESUME_FROM, fingerprint, is_rank_zero, resume_checkpoint,
                                               shared_resume, start_over)
    from pipeline.training.dev_bleu import DevBleu
    from pipeline.training.cuda import apply_cuda_settings
    from pipeline.training.host_memory import keep_freed_memory
    from pipeline.training.precision import device_type
    from pipeline.training.process_group import release_process_group
    from pipeline.training.requeue import RequeueOnSignal
    from pipeline.training.precision import resolve as resolve_precision
    from pipeline.tracking.runs import Tracker
    from pipeline.sweeps.tuned import describe, tuned_params

    family, _ = parse_model_name(model)
    CORPORA[corpus].description()
    say = rank_zero_only(partial(print, flush=True))  # DDP's other ranks run this too: rank 0 speaks for them
    data_dir = CORPORA[corpus].data
    tuned: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    if corpus == "bible":  # sweeps run on the Bible corpus
        params, tuned = tuned_params(params, model)
    else:  # the controlled experiment keeps its calibrated sizes under any profile
        params = controlled_experiment(params)
        if overrides := params.experiments.synthetic_overrides:
            say(f"synthetic overrides: {describe(overrides)}")
        if variant is not None:
            settings = params.ablations.variants[variant].settings
            params = overlay(params, settings)
            overrides = {**overrides, **settings}
            say(f"variant {variant}: {describe(settings) or 'the controlled experiment as it is'}")
    device = device_type(params.train.accelerator)
    precision = resolve_precision(params.train.precision, device)
    cuda_trainer_settings = apply_cuda_settings(device)  # TF32, deterministic kernels; {} on a CPU
    say(f"precision: {precision.value} ({precision.reason})")
    # The resolved value is what the checkpoint's fingerprint holds: auto on another machine may differ.
    params = params.model_copy(update={"train": params.train.model_copy(update={"precision": precision.value})})
    config = params.train
    pl.seed_everything(config.seed, workers=True, verbose=False)
    torch.set_flush_denormal(True)  # denormal floats are ~100× slower on x86 CPUs (see pipeline.stages.evaluate)
    if keep_freed_memory():  # no page faults on each step's large tensors (pipeline.training.host_memory)
        say("host memory: freed blocks stay in the heap for the next step (glibc mallopt)")
    run = variant or model  # the checkpoint folder, report files and MLflow run
    checkpoints = Path("checkpoints/ablations") / run if variant else CORPORA[corpus].checkpoints / run
    rank_zero = is_rank_zero()
    key = fingerprint(model, params, data_dir)
    resume = shared_resume(lambda: resume_checkpoint(checkpoints, key))  # the same on every DDP rank
    if srun.requested():  # in a SLURM batch step: the ranks are srun's, each runs this stage again
        srun.launch(config, resume, RESUME_FROM)
    if resume:
        say(f"resuming from {resume}")

    task, datamodule = build_task_and_data(model, data_dir, params)
    try:  # damaged prepared data stops here, before an MLflow run or checkpoint folder exists
        datamodule.setup()
    except FileNotFoundError as error:
        raise CORPORA[corpus].missing(error.filename) from None
    # The reordered task is the controlled experiment in another word order: the same calibrated budget.
    epochs = config.epochs.for_model("bible" if corpus == "bible" else "synthetic", family, config.max_epochs)
    # The step budget is the Bible corpus's: the controlled experiment keeps its calibrated epochs.
    max_steps = config.max_steps if corpus == "bible" else None
    timer = StepTimer(duration=timedelta(minutes=config.time_limit_minutes), interval="step")  # safety only
    history = EpochHistory(timer)
    best = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="dev_loss", mode="min", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    last = TimedCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False,
                           train_time_interval=timedelta(minutes=config.checkpoint_every_minutes))
    # tqdm rather than rich: its lines also show in logs that are not a terminal (CI, `ray job logs`).
    safety = SafetyStop(timer, checkpoints / "last.ckpt")
    callbacks = [timer, safety, history, best, last, TQDMProgressBar(refresh_rate=20)]
    plugins = []
    if srun.is_rank():  # SLURM's SIGUSR1 before the time limit: checkpoint and requeue at a batch boundary
        callbacks.append(RequeueOnSignal(checkpoints / "last.ckpt"))
        plugins.append(SLURMEnvironment(auto_requeue=False))  # ranks from srun; requeue is ours (requeue.py)
    if config.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor="dev_loss", mode="min", patience=config.early_stopping_patience))
    if family != "lm":
        callbacks.append(DevBleu(data_dir, config.dev_bleu_sentences, config.dev_bleu_every, config.beam_size))

    tracker = Tracker(params.mlflow) if rank_zero else None
    run_id = tracker.model_run(corpus, run, "train", "ablation" if variant else "model") if tracker else None
    # Only now, with the data and the MLflow store known to be usable: a run that cannot start
    # leaves an earlier run's checkpoints as they were and creates no checkpoint folder.
    if rank_zero and resume is None:
        start_over(checkpoints, key)
    logger = MLFlowLogger(experiment_name=params.mlflow.experiment, tracking_uri=tracker.uri if tracker else None,
                          run_id=run_id) if tracker else False
    trainer = pl.Trainer(
        accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes, plugins=plugins,
        strategy="ddp" if config.devices * config.num_nodes > 1 else "auto", precision=config.precision,
        max_epochs=epochs, max_steps=max_steps or -1, use_distributed_sampler=False, callbacks=callbacks, logger=logger,
        num_sanity_val_steps=0, log_every_n_steps=10, **validation_schedule(max_steps), **cuda_trainer_settings,
    )
    started = time.monotonic()
    trainer.fit(task, datamodule, ckpt_path=resume)
    if safety.epoch is None:  # (else last.ckpt is where the safety limit stopped)
        trainer.save_checkpoint(checkpoints / "last.ckpt")  # on every rank: it ends in a barrier
    release_process_group()  # after the last collective: else a gloo rank may abort at exit
    if not trainer.is_global_zero:
        return {}
    if safety.epoch is not None:
        raise UserError(f"{corpus}/{run}: stopped by the safety limit train.time_limit_minutes="
                        f"{config.time_limit_minutes:g} in epoch {safety.epoch + 1} of {epochs}; "
                        f"run the stage again to continue from {checkpoints / 'last.ckpt'}, or raise the limit")
    if not (checkpoints / "best.ckpt").exists():  # stopped before the first validation
        shutil.copy(checkpoints / "last.ckpt", checkpoints / "best.ckpt")

    summary = {
        "best_dev_loss": round(float(best.best_model_score), 5) if best.best_model_score is not None else None,
        "epochs": trainer.current_epoch, "steps": trainer.global_step,
        "minutes_total": round(timer.time_elapsed("train") / 60, 2),
        "minutes_this_run": round((time.monotonic() - started) / 60, 2),
        "resumed": resume is not None,
        "epoch_budget": epochs,
        "target_tokens_seen": history.tokens,
        "stopped_by": ("step budget" if max_steps and trainer.global_step >= max_steps else
                       "early stopping" if trainer.current_epoch < epochs else "epoch budget"),
        "parameters": sum(p.numel() for p in task.parameters()),
        "precision": precision.value,
    }
    if tuned:
        summary["tuned"] = tuned
    if overrides:
        summary["overrides"] = overrides
    if history.rows:
        summary["best_dev_ppl"] = history.best_dev_ppl or min(r.get("dev_ppl", float("inf")) for r in history.rows)
        bleus = [r["dev_bleu"] for r in history.rows if "dev_bleu" in r]
        if bleus:
            summary["last_dev_bleu"] = bleus[-1]
    reports = Path("reports/ablations/train") if variant else Path("reports/train") / corpus
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{run}.json").write_text(json.dumps(summary, indent=2) + "\n")
    columns = ["epoch", "step", "tokens", "train_loss_epoch", "dev_loss", "dev_ppl", "dev_bleu", "lr", "minutes"]
    with (reports / f"{run}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history.rows)
    if tracker:
        for path in (checkpoints / "best.ckpt", reports / f"{run}.json", reports / f"{run}.csv"):
            tracker.client.log_artifact(run_id, str(path), artifact_path="train")
        tracker.finish(run_id)
    return summary


def validation_schedule(max_steps: Optional[int]) -> dict[str, Any]:
    """Trainer settings for when to validate: at every epoch's end, or, under a step budget (which
    may end mid-epoch, where Lightning would never validate), every quarter of the budget counted
    across epochs, so the last validation falls on the last step (dev loss, best.ckpt, dev BLEU)."""
    if not max_steps:
        return {}
    every = next(d for d in range(max(max_steps // 4, 1), 0, -1) if max_steps % d == 0)
    return {"check_val_every_n_epoch": None, "val_check_interval": every}


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Train one model (see params.yaml: model, train).")
    parser.add_argument("model", nargs="?", help="lm-<cell>, rnnenc-<cell> or rnnsearch-<cell>")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="bible")
    parser.add_argument("--variant", help="an ablations.variants name: train its model on its corpus with its settings")
    arguments = parser.parse_args()
    if srun.is_rank():
        srun.listen()  # before the slow imports: SIGUSR1's default action would end the rank
    params = load_params()
    model, corpus = arguments.model, arguments.corpus
    if arguments.variant is not None:
        variant = params.ablations.variants.get(arguments.variant)
        if variant is None:
            raise ConfigError(f"ablations.variants: no variant {arguments.variant!r} (params.yaml has: "
                              f"{', '.join(params.ablations.variants) or 'none'})")
        model, corpus = variant.model, variant.corpus
    elif model is None:
        parser.error("give a model, or --variant NAME")
    model_argument(model)
    summary = train(model, corpus, params, arguments.variant)
    if summary:
        print(f"trained {corpus}/{arguments.variant or model}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
