"""The stage's callbacks: no DDP broadcast at every step, and the best dev perplexity of every validation."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch

from pipeline.training.callbacks import DDP_CHECK_EVERY, EpochHistory, StepTimer, TimedCheckpoint


class FakeTrainer(SimpleNamespace):
    """What the callbacks read of a Trainer, with a strategy that counts its broadcasts."""

    def __init__(self, world_size: int) -> None:
        broadcasts = []
        strategy = SimpleNamespace(broadcast=lambda obj, src=0: broadcasts.append(obj) or obj)
        super().__init__(world_size=world_size, global_step=0, should_stop=False, strategy=strategy,
                         broadcasts=broadcasts, sanity_checking=False, callback_metrics={})


def _run(callback, trainer, steps: int) -> None:
    for step in range(1, steps + 1):
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, None, None, step - 1)


@pytest.mark.parametrize("world_size, expected", [(1, 200), (2, 200 // DDP_CHECK_EVERY)])
def test_timer_broadcasts_every_step_only_alone(world_size, expected):
    timer, trainer = StepTimer(duration=timedelta(minutes=5), interval="step"), FakeTrainer(world_size)
    _run(timer, trainer, 200)
    assert len(trainer.broadcasts) == expected and not trainer.should_stop
    assert timer.state_key == "Timer"  # resumes read Lightning's Timer entry


@pytest.mark.parametrize("world_size, expected", [(1, 200), (2, 200 // DDP_CHECK_EVERY)])
def test_time_interval_checkpoint_broadcasts_every_step_only_alone(world_size, expected, tmp_path, monkeypatch):
    checkpoint = TimedCheckpoint(dirpath=tmp_path, filename="last", train_time_interval=timedelta(minutes=2))
    monkeypatch.setattr(checkpoint, "_should_skip_saving_checkpoint", lambda trainer: False)
    trainer = FakeTrainer(world_size)
    pl_module = SimpleNamespace(automatic_optimization=True)
    for step in range(1, 201):
        trainer.global_step = step
        checkpoint.on_train_batch_end(trainer, pl_module, None, None, step - 1)
    assert len(trainer.broadcasts) == expected
    assert checkpoint.state_key.startswith("ModelCheckpoint{")


def test_best_dev_ppl_counts_every_validation_not_only_epoch_ends():
    history, trainer = EpochHistory(timer=None), FakeTrainer(1)
    for ppl in (9.0, 4.0, 6.0):  # three validations within one epoch (a step budget)
        trainer.callback_metrics = {"dev_ppl": torch.tensor(ppl)}
        history.on_validation_end(trainer, None)
    trainer.sanity_checking, trainer.callback_metrics = True, {"dev_ppl": torch.tensor(1.0)}
    history.on_validation_end(trainer, None)  # the sanity check is not a measurement
    assert history.best_dev_ppl == 4.0
    restored = EpochHistory(timer=None)
    restored.load_state_dict(history.state_dict())
    assert restored.best_dev_ppl == 4.0
