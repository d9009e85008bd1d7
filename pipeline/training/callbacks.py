"""The training stage's own Lightning callbacks: the per-epoch curve, a clean stop at the safety limit,
and Lightning's Timer and time-interval ModelCheckpoint without an object broadcast at every DDP step."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, Timer

# Under DDP, Lightning's Timer(interval="step") and ModelCheckpoint(train_time_interval=…) broadcast
# rank 0's decision at every step (a pickled object: the host waits for every device). Checking every
# this many steps instead makes a stop or a save at most that late (seconds).
DDP_CHECK_EVERY = 50


def _skip_ddp_check(trainer) -> bool:
    """True on the steps where a multi-rank run skips the check; a single process checks every step."""
    return trainer.world_size > 1 and trainer.global_step % DDP_CHECK_EVERY != 0


class StepTimer(Timer):
    """``Timer(interval="step")`` that, under DDP, checks (and broadcasts) every DDP_CHECK_EVERY steps.
    Same checkpoint entry as Lightning's Timer."""

    @property
    def state_key(self) -> str:
        return Timer.__qualname__

    def on_train_batch_end(self, trainer, *args: Any, **kwargs: Any) -> None:
        if not _skip_ddp_check(trainer):
            super().on_train_batch_end(trainer, *args, **kwargs)


class TimedCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint(train_time_interval=…)`` that, under DDP, looks at the clock (and broadcasts)
    every DDP_CHECK_EVERY steps. Same checkpoint entry as Lightning's ModelCheckpoint."""

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_batch_end(self, trainer, *args: Any, **kwargs: Any) -> None:
        if not _skip_ddp_check(trainer):
            super().on_train_batch_end(trainer, *args, **kwargs)


class EpochHistory(pl.Callback):
    """Per-epoch metrics; part of the checkpoint, so the curve survives a resume."""

    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self.rows: list[dict[str, Any]] = []
        self.tokens = 0  # target tokens trained on (EOS included), all ranks, all runs
        # Best dev perplexity over every validation, not only those at an epoch's end: under a step
        # budget validation runs four times within one epoch (pipeline.stages.train.validation_schedule).
        self.best_dev_ppl: Optional[float] = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or "dev_ppl" not in trainer.callback_metrics:
            return
        ppl = round(float(trainer.callback_metrics["dev_ppl"]), 5)
        self.best_dev_ppl = ppl if self.best_dev_ppl is None else min(self.best_dev_ppl, ppl)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()
                   if k in ("train_loss_epoch", "dev_loss", "dev_ppl", "dev_bleu")}
        self.tokens += int(trainer.callback_metrics.get("train_tokens", 0))  # the epoch's sum over ranks
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                          "tokens": self.tokens, **metrics, "lr": lr,
                          "minutes": round(self.timer.time_elapsed("train") / 60, 2)})

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "tokens": self.tokens, "best_dev_ppl": self.best_dev_ppl}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows, self.tokens = state_dict["rows"], state_dict.get("tokens", 0)
        self.best_dev_ppl = state_dict.get("best_dev_ppl")


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
