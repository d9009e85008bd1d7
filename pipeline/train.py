"""`train` stage: fit one architecture on a prepared corpus with a Lightning Trainer built from params.

    python -m pipeline.train rnnsearch-gru                      # the Bible corpus (data/prepared)
    python -m pipeline.train rnnsearch-gru --corpus synthetic   # the controlled corpus

Writes ``checkpoints/<corpus>/<model>/{best,last}.ckpt`` (best = lowest dev loss, what evaluate
uses; last = saved every ``train.checkpoint_every_minutes`` and at the end) and
``reports/train/<corpus>/<model>.{json,csv}`` (summary metric, per-epoch curve). A run that was
interrupted, even by SIGKILL, resumes from its newest checkpoint when started again with the same
model, data and optimisation settings. The budget is epochs (``train.epochs`` by corpus and family),
so a run gives the same checkpoints on any machine; ``train.time_limit_minutes`` is only a safety
limit, counted across resumes (Lightning's Timer state lives in the checkpoint), that fails the stage.
Devices > 1 trains with DDP, one process per device.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

from pipeline.config import Params, load_params, overlay
from pipeline.corpora import CORPORA
from pipeline.errors import ConfigError, DataError, UserError, stage_entry_point

# Settings that only say how long or where to train: changing them continues a run, not restarts it.
CONTINUABLE = {"max_epochs", "epochs", "time_limit_minutes", "early_stopping_patience", "accelerator", "devices",
               "num_workers", "checkpoint_every_minutes", "dev_bleu_every", "dev_bleu_sentences",
               "use_tuned"}  # use_tuned: the tuned values themselves are part of the fingerprint
MODEL_CODE = Path(__file__).resolve().parents[1] / "models"


def fingerprint(model: str, params: Params, data_dir: Path) -> str:
    """Identifies what a checkpoint was trained for: resuming across a change of any of it is wrong."""
    train = {k: v for k, v in params.train.model_dump(mode="json").items() if k not in CONTINUABLE}
    digest = hashlib.sha256(json.dumps([model, params.model.model_dump(), train], sort_keys=True).encode())
    for path in [data_dir / "stats.json", data_dir / "corpus.json", *sorted(MODEL_CODE.glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def resume_checkpoint(directory: Path, key: str) -> Optional[Path]:
    """The newest checkpoint of a compatible earlier run, None to start over; changes nothing.
    A truncated one is a UserError: resuming would fail deep inside Lightning."""
    stamp = directory / "fingerprint"
    if not (stamp.is_file() and stamp.read_text() == key):
        return None
    candidates = [p for p in (directory / "last.ckpt", directory / "best.ckpt") if p.exists()]
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    if not zipfile.is_zipfile(newest):  # torch.save writes a zip archive; its index is at the end of the file
        others = [p.name for p in candidates if p != newest]
        then = f"resume from {others[0]}" if others else "start over"
        raise UserError(f"{newest}: truncated or not a checkpoint file, cannot resume from it; "
                        f"delete it and run the stage again to {then} (or `dvc checkout` it)")
    return newest


def start_over(directory: Path, key: str) -> None:
    """Removes a stale run's checkpoints and stamps the folder with what the new run trains."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "fingerprint").write_text(key)


def safety_stop_callback(timer, path: Path):
    """Saves ``last.ckpt`` where the safety time limit stops training, mid-epoch, so a resumed run
    continues with the next batch; Lightning would otherwise count the cut epoch as finished and the
    checkpoint after ``fit`` would skip the rest of it. Placed after ``timer`` in the callback list."""
    import pytorch_lightning as pl

    class SafetyStop(pl.Callback):
        def __init__(self) -> None:
            self.epoch: Optional[int] = None  # the epoch the limit cut short

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
            if self.epoch is not None or not trainer.should_stop or timer.time_remaining("train") > 0:
                return
            if batch_index + 1 >= trainer.num_training_batches and trainer.current_epoch + 1 >= trainer.max_epochs:
                return  # the limit came with the last batch of the budget: nothing was cut
            self.epoch = trainer.current_epoch
            trainer.save_checkpoint(path)

    return SafetyStop()


def epoch_history_callback(timer):
    import pytorch_lightning as pl

    class EpochHistory(pl.Callback):
        """Per-epoch metrics; part of the checkpoint, so the curve survives a resume."""

        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self.tokens = 0  # target tokens trained on (EOS included), all ranks, all runs

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()
                       if k in ("train_loss_epoch", "dev_loss", "dev_ppl", "dev_bleu")}
            self.tokens += int(trainer.callback_metrics.get("train_tokens", 0))  # the epoch's sum over ranks
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.rows.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                              "tokens": self.tokens, **metrics, "lr": lr,
                              "minutes": round(timer.time_elapsed("train") / 60, 2)})

        def state_dict(self) -> dict[str, Any]:
            return {"rows": self.rows, "tokens": self.tokens}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            self.rows, self.tokens = state_dict["rows"], state_dict.get("tokens", 0)

    return EpochHistory()


def build_task_and_data(model: str, data_dir: Path, params: Params):
    """The LightningModule and DataModule of ``model`` on a prepared corpus: what the training stage
    and every Ray Tune trial (pipeline.trial) fit."""
    from models.registry import parse_model_name, task_class
    from pipeline.datamodule import PreparedDataModule
    from pipeline.vocabulary import Vocabulary

    family, _ = parse_model_name(model)
    config = params.train
    try:
        vocab_sizes = [len(Vocabulary.load(data_dir / f"vocab/{side}.json")) for side in ("src", "tgt")]
    except FileNotFoundError as error:
        raise DataError(f"{error.filename}: not found (made by the prepare stage; run it again)") from None
    task = task_class(model)(model, *vocab_sizes, params.model.model_dump(), config.model_dump())
    datamodule = PreparedDataModule(data_dir, config.batch_tokens, config.seed, target_only=family == "lm",
                                    num_workers=config.num_workers, batch_sentences=config.batch_sentences)
    return task, datamodule


def train(model: str, corpus: str, params: Params) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, Timer, TQDMProgressBar
    from pytorch_lightning.loggers import MLFlowLogger

    from models.registry import parse_model_name
    from pipeline.dev_bleu import DevBleu
    from pipeline.precision import device_type
    from pipeline.precision import resolve as resolve_precision
    from pipeline.tracking import Tracker
    from pipeline.tuned import describe, tuned_params

    family, _ = parse_model_name(model)
    CORPORA[corpus].description()
    data_dir = CORPORA[corpus].data
    tuned: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    if corpus == "bible":  # sweeps run on the Bible corpus
        params, tuned = tuned_params(params, model)
    elif overrides := params.experiments.synthetic_overrides:  # the controlled experiment's own sizes
        params = overlay(params, overrides)
        print(f"synthetic overrides: {describe(overrides)}", flush=True)
    precision = resolve_precision(params.train.precision, device_type(params.train.accelerator))
    print(f"precision: {precision.value} ({precision.reason})", flush=True)
    # The resolved value is what the checkpoint's fingerprint holds: auto on another machine may differ.
    params = params.model_copy(update={"train": params.train.model_copy(update={"precision": precision.value})})
    config = params.train
    pl.seed_everything(config.seed, workers=True, verbose=False)
    torch.set_flush_denormal(True)  # denormal floats are ~100× slower on x86 CPUs (see pipeline.evaluate)
    checkpoints = CORPORA[corpus].checkpoints / model
    rank_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    key = fingerprint(model, params, data_dir)
    resume = resume_checkpoint(checkpoints, key) if rank_zero else None

    task, datamodule = build_task_and_data(model, data_dir, params)
    try:  # damaged prepared data stops here, before an MLflow run or checkpoint folder exists
        datamodule.setup()
    except FileNotFoundError as error:
        raise CORPORA[corpus].missing(error.filename) from None
    epochs = config.epochs.for_model(corpus, family, config.max_epochs)
    timer = Timer(duration=timedelta(minutes=config.time_limit_minutes), interval="step")  # safety only
    history = epoch_history_callback(timer)
    best = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="dev_loss", mode="min", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False,
                           train_time_interval=timedelta(minutes=config.checkpoint_every_minutes))
    # tqdm rather than rich: its lines also show in logs that are not a terminal (CI, `ray job logs`).
    safety = safety_stop_callback(timer, checkpoints / "last.ckpt")
    callbacks = [timer, safety, history, best, last, TQDMProgressBar(refresh_rate=20)]
    if config.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor="dev_loss", mode="min", patience=config.early_stopping_patience))
    if family != "lm":
        callbacks.append(DevBleu(data_dir, config.dev_bleu_sentences, config.dev_bleu_every, config.beam_size))

    tracker = Tracker(params.mlflow) if rank_zero else None
    run_id = tracker.model_run(corpus, model, "train") if tracker else None
    # Only now, with the data and the MLflow store known to be usable: a run that cannot start
    # leaves an earlier run's checkpoints as they were and creates no checkpoint folder.
    if rank_zero and resume is None:
        start_over(checkpoints, key)
    logger = MLFlowLogger(experiment_name=params.mlflow.experiment, tracking_uri=tracker.uri if tracker else None,
                          run_id=run_id) if tracker else False
    trainer = pl.Trainer(
        accelerator=config.accelerator, devices=config.devices,
        strategy="ddp" if config.devices > 1 else "auto", precision=config.precision,
        max_epochs=epochs, use_distributed_sampler=False, callbacks=callbacks, logger=logger,
        num_sanity_val_steps=0, log_every_n_steps=10,
    )
    started = time.monotonic()
    trainer.fit(task, datamodule, ckpt_path=resume)
    if not trainer.is_global_zero:
        return {}
    if safety.epoch is not None:  # last.ckpt is where it stopped
        raise UserError(f"{corpus}/{model}: stopped by the safety limit train.time_limit_minutes="
                        f"{config.time_limit_minutes:g} in epoch {safety.epoch + 1} of {epochs}; "
                        f"run the stage again to continue from {checkpoints / 'last.ckpt'}, or raise the limit")
    trainer.save_checkpoint(checkpoints / "last.ckpt")
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
        "stopped_by": "early stopping" if trainer.current_epoch < epochs else "epoch budget",
        "parameters": sum(p.numel() for p in task.parameters()),
        "precision": precision.value,
    }
    if tuned:
        summary["tuned"] = tuned
    if overrides:
        summary["overrides"] = overrides
    if history.rows:
        summary["best_dev_ppl"] = min(r.get("dev_ppl", float("inf")) for r in history.rows)
        bleus = [r["dev_bleu"] for r in history.rows if "dev_bleu" in r]
        if bleus:
            summary["last_dev_bleu"] = bleus[-1]
    reports = Path("reports/train") / corpus
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{model}.json").write_text(json.dumps(summary, indent=2) + "\n")
    columns = ["epoch", "step", "tokens", "train_loss_epoch", "dev_loss", "dev_ppl", "dev_bleu", "lr", "minutes"]
    with (reports / f"{model}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history.rows)
    if tracker:
        for path in (checkpoints / "best.ckpt", reports / f"{model}.json", reports / f"{model}.csv"):
            tracker.client.log_artifact(run_id, str(path), artifact_path="train")
        tracker.finish(run_id)
    return summary


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Train one model (see params.yaml: model, train).")
    parser.add_argument("model", help="lm-<cell>, rnnenc-<cell> or rnnsearch-<cell>")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="bible")
    arguments = parser.parse_args()
    params = load_params()
    from models.registry import MODEL_NAMES

    if arguments.model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {arguments.model!r} (allowed: {', '.join(MODEL_NAMES)})")
    summary = train(arguments.model, arguments.corpus, params)
    if summary:
        print(f"trained {arguments.corpus}/{arguments.model}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
