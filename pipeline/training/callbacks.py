"""The training stage's own Lightning callbacks: the per-epoch curve, and a clean stop at the safety limit."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer


class EpochHistory(pl.Callback):
    """Per-epoch metrics; part of the checkpoint, so the curve survives a resume."""

    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self.rows: list[dict[str, Any]] = []
        self.tokens = 0  # target tokens trained on (EOS included), all ranks, all runs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()
                   if k in ("train_loss_epoch", "dev_loss", "dev_ppl", "dev_bleu")}
        self.tokens += int(trainer.callback_metrics.get("train_tokens", 0))  # the epoch's sum over ranks
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                          "tokens": self.tokens, **metrics, "lr": lr,
                          "minutes": round(self.timer.time_elapsed("train") / 60, 2)})

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "tokens": self.tokens}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows, self.tokens = state_dict["rows"], state_dict.get("tokens", 0)


class SafetyStop(pl.Callback):
    """Saves ``last.ckpt`` where the safety time limit stops training, mid-epoch, so a resumed run
    continues with the next batch; Lightning would otherwise count the cut epoch as finished and the
    checkpoint after ``fit`` would skip the rest of it. Placed after ``timer`` in the callback list."""

    def __init__(self, timer: Timer, path: Path) -> None:
        self.timer, self.path = timer, path
        self.epoch: Optional[int] = None  # the epoch the limit cut short

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if self.epoch is not None or not trainer.should_stop or self.timer.time_remaining("train") > 0:
            return
        last_of_epochs = batch_index + 1 >= trainer.num_training_batches and trainer.current_epoch + 1 >= trainer.max_epochs
        if last_of_epochs or 0 < trainer.max_steps <= trainer.global_step:
            return  # the limit came with the last batch of the budget: nothing was cut
        self.epoch = trainer.current_epoch
        trainer.save_checkpoint(self.path)
