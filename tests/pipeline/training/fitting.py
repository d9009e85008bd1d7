"""Fit a task on the tiny corpus with a real Lightning Trainer (shared by the training tests)."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from pipeline.training.tasks import task_class
from pipeline.config import ModelConfig, TrainConfig
from pipeline.training.datamodule import PreparedDataModule
from pipeline.training.dev_bleu import DevBleu
from tests.pipeline.helpers import TINY_RUN, params_with

TINY_MODEL = ModelConfig(emb_size=16, hidden_size=32, maxout_size=16, attention_size=16, num_layers=1, dropout=0.0,
                         context_size=None, reverse_source=False, bidirectional=False)
VOCAB = 16  # 4 special tokens + 12 words (tiny_corpus)


class History(pl.Callback):
    """Epoch-end metrics, one dict per epoch (validation runs before ``on_train_epoch_end``)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def build(name: str, **train_overrides):
    tiny = {"batch_tokens": 128, "lr": 0.01, "dev_bleu_sentences": 32, **train_overrides}
    train = TrainConfig.model_validate(params_with(TINY_RUN, {"train": tiny})["train"])
    task = task_class(name)(name, VOCAB, VOCAB, TINY_MODEL.model_dump(), train.model_dump())
    return task, train


def fit(name: str, data: Path, epochs: int, devices: int = 1, **train_overrides):
    task, train = build(name, **train_overrides)
    history = History()
    callbacks = [history]
    if not name.startswith("lm-"):
        callbacks.insert(0, DevBleu(data, train.dev_bleu_sentences, train.dev_bleu_every, train.beam_size))
    trainer = pl.Trainer(accelerator="cpu", devices=devices, max_epochs=epochs, use_distributed_sampler=False,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, num_sanity_val_steps=0)
    datamodule = PreparedDataModule(data, train.batch_tokens, train.seed, target_only=name.startswith("lm-"))
    trainer.fit(task, datamodule)
    return task, trainer, history
