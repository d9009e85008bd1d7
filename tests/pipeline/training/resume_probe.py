"""A fit that records its batches and can SIGKILL itself mid-epoch, then resume from its checkpoint.

    python -m tests.pipeline.training.resume_probe <tiny corpus dir> <output dir> <checkpoint every> [kill at step]

Appends one JSON line per training step to ``<output>/batches.jsonl`` ({"step", "epoch", "index"}),
checkpoints every <checkpoint every> steps to ``<output>/last.ckpt`` and resumes from it when it
exists; writes the final weights to ``<output>/final.pt``.
"""
import json
import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from pipeline.training.datamodule import PreparedDataModule
from tests.pipeline.training.fitting import build

EPOCHS = 3


class RecordAndKill(pl.Callback):
    def __init__(self, output: Path, kill_at: int | None) -> None:
        self.records = (output / "batches.jsonl").open("a")
        self.kill_at = kill_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        record = {"step": trainer.global_step, "epoch": trainer.current_epoch, "index": batch["index"].tolist()}
        self.records.write(json.dumps(record) + "\n")
        self.records.flush()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if trainer.global_step == self.kill_at:  # a few steps after a checkpoint: their work is lost
            os.kill(os.getpid(), signal.SIGKILL)


def main(data: Path, output: Path, every: int, kill_at: int | None) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)  # the same initial weights in every run
    task, train = build("rnnenc-gru", dev_bleu_every=0)
    last = ModelCheckpoint(dirpath=output, filename="last", every_n_train_steps=every, enable_version_counter=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=EPOCHS, use_distributed_sampler=False, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[last, RecordAndKill(output, kill_at)])
    resume = output / "last.ckpt"
    trainer.fit(task, PreparedDataModule(data, train.batch_tokens, train.seed),
                ckpt_path=resume if resume.exists() else None)
    torch.save(task.state_dict(), output / "final.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
