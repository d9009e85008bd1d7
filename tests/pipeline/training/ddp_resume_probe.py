"""A 2-process DDP fit (CPU, gloo) that checkpoints, can SIGKILL itself mid-epoch, and resumes.

    python -m tests.pipeline.training.ddp_resume_probe <tiny corpus dir> <output dir> <checkpoint every> [kill at step]

Every rank appends to ``<output>/rank<k>.jsonl``: on train start {"start": global step, "epoch",
"optimizer": a digest of the optimizer state}, then per step {"step", "epoch", "index"}; at the end
{"dev_loss"}. Both ranks SIGKILL themselves at <kill at step>. Rank 0 decides where to resume with
the training stage's own ``shared_resume``, and writes the final weights to ``<output>/final.pt``.
"""
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from pipeline.training.checkpoints import shared_resume
from pipeline.training.datamodule import PreparedDataModule
from pipeline.training.process_group import release_process_group
from tests.pipeline.training.fitting import build

EPOCHS = 3


def optimizer_digest(trainer) -> str:
    digest = hashlib.sha256()
    for state in trainer.optimizers[0].state_dict()["state"].values():
        for value in state.values():
            digest.update(value.detach().cpu().numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    return digest.hexdigest()[:16]


class Record(pl.Callback):
    def __init__(self, output: Path, kill_at: int | None) -> None:
        self.output, self.kill_at = output, kill_at

    def write(self, trainer, record: dict) -> None:
        with (self.output / f"rank{trainer.global_rank}.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_train_start(self, trainer, pl_module) -> None:
        self.write(trainer, {"start": trainer.global_step, "epoch": trainer.current_epoch,
                             "optimizer": optimizer_digest(trainer), "world_size": trainer.world_size})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        self.write(trainer, {"step": trainer.global_step, "epoch": trainer.current_epoch,
                             "index": batch["index"].tolist()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if trainer.global_step == self.kill_at:  # every rank, at the same step, a few after a checkpoint
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, {"dev_loss": float(trainer.callback_metrics["dev_loss"])})


def main(data: Path, output: Path, every: int, kill_at: int | None) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    task, train = build("rnnenc-gru", dev_bleu_every=0)
    last = ModelCheckpoint(dirpath=output, filename="last", every_n_train_steps=every, enable_version_counter=False)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS, use_distributed_sampler=False,
                         logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[last, Record(output, kill_at)])
    resume = shared_resume(lambda: output / "last.ckpt" if (output / "last.ckpt").exists() else None)
    trainer.fit(task, PreparedDataModule(data, train.batch_tokens, train.seed), ckpt_path=resume)
    if trainer.is_global_zero:
        torch.save(task.state_dict(), output / "final.pt")
    release_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
