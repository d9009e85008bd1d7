"""A 2-process DDP fit (CPU, gloo) that records which sentences each rank trained on.

    python -m tests.pipeline.training.ddp_probe <tiny corpus dir> <output dir>

Lightning's DDP relaunches this module for rank 1, hence a real module with a ``__main__`` guard.
Each rank writes ``rank<k>.json``: its batches (sentence indices) per epoch.
"""
import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from tests.pipeline.training.fitting import build
from pipeline.training.datamodule import PreparedDataModule
from pipeline.training.process_group import release_process_group


class RecordBatches(pl.Callback):
    def __init__(self, output: Path) -> None:
        self.output, self.epochs = output, []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        self.epochs[-1].append(batch["index"].tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "epochs": self.epochs,
                  "dev_loss": float(trainer.callback_metrics["dev_loss"])}
        (self.output / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main(data: Path, output: Path) -> None:
    torch.set_num_threads(1)
    task, train = build("rnnenc-gru", dev_bleu_every=0)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, use_distributed_sampler=False,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[RecordBatches(output)])
    trainer.fit(task, PreparedDataModule(data, train.batch_tokens, train.seed))
    release_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
