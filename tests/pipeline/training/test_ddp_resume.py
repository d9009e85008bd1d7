"""DDP on CPU (2 gloo processes): a run SIGKILLed mid-epoch resumes on every rank at the same step,
with the same optimizer state and the batches of an uninterrupted run; the dev loss summed over the
ranks equals the single-process value (every dev sentence counted once)."""
import json
import os
import signal
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from pipeline.errors import UserError
from pipeline.training.batching import TokenBudgetBatchSampler
from pipeline.training.datamodule import ParallelSplit, PreparedDataModule
from tests.pipeline.helpers import REPO
from tests.pipeline.training.fitting import build
from tests.pipeline.training.tiny_corpus import write_tiny_corpus

CHECKPOINT_EVERY = 6
SIZES = (("train", 1024), ("dev", 45), ("test", 32))  # a dev split whose batches do not divide by 2


def probe(data, output, every, *kill_at):
    output.mkdir(exist_ok=True)
    environment = {key: value for key, value in os.environ.items() if key != "BOTTLENECK_RESUME_FROM"}
    return subprocess.run([sys.executable, "-m", "tests.pipeline.training.ddp_resume_probe", str(data), str(output),
                           str(every), *map(str, kill_at)], cwd=REPO,
                          env=dict(environment, PYTHONPATH=str(REPO), MASTER_ADDR="127.0.0.1"),
                          capture_output=True, text=True, timeout=240)  # a rank left behind hangs DDP


def records(output, rank):
    return [json.loads(line) for line in (output / f"rank{rank}.jsonl").read_text().splitlines()]


def steps(log):
    return [record for record in log if "step" in record]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-resume")
    data = write_tiny_corpus(root / "tiny", sizes=SIZES)
    result = probe(data, root / "straight", CHECKPOINT_EVERY)
    assert result.returncode == 0, result.stderr[-3000:]
    return data, root / "straight"


def test_a_killed_ddp_run_resumes_on_every_rank(uninterrupted, tmp_path):
    data, straight = uninterrupted
    expected = [steps(records(straight, rank)) for rank in (0, 1)]
    per_epoch = sum(1 for step in expected[0] if step["epoch"] == 0)
    checkpoint = (per_epoch + per_epoch // 2) // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    assert per_epoch < checkpoint < 2 * per_epoch  # mid-epoch, in the second epoch

    killed = probe(data, tmp_path, CHECKPOINT_EVERY, checkpoint + 2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = probe(data, tmp_path, CHECKPOINT_EVERY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    starts = [[record for record in records(tmp_path, rank) if "start" in record] for rank in (0, 1)]
    fresh = starts[0][0]["optimizer"]
    for rank in (0, 1):
        first, second = starts[rank]
        assert first["start"] == 0 and second["start"] == checkpoint and second["epoch"] == 1, (rank, second)
        assert second["world_size"] == 2
    assert starts[0][1]["optimizer"] == starts[1][1]["optimizer"] != fresh  # restored, the same on both ranks
    for rank in (0, 1):  # after the resume, each rank trains on the batches an uninterrupted run did
        log = steps(records(tmp_path, rank))
        assert log[:checkpoint] + log[checkpoint + 2:] == expected[rank]
    final = [torch.load(folder / "final.pt") for folder in (straight, tmp_path)]
    assert all(torch.equal(final[0][key], final[1][key]) for key in final[0])


def test_ddp_dev_loss_equals_the_single_process_value(uninterrupted):
    data, straight = uninterrupted
    task, train = build("rnnenc-gru", dev_bleu_every=0)
    dev_lengths = ParallelSplit(data / "dev").lengths(("src", "tgt"))
    assert len(TokenBudgetBatchSampler(dev_lengths, train.batch_tokens, False, train.seed)) % 2 == 1
    ddp = [record["dev_loss"] for rank in (0, 1) for record in records(straight, rank) if "dev_loss" in record]
    assert ddp[0] == ddp[1]
    task.load_state_dict(torch.load(straight / "final.pt"))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    single = trainer.validate(task, PreparedDataModule(data, train.batch_tokens, train.seed), verbose=False)[0]
    assert single["dev_loss"] == pytest.approx(ddp[0], rel=1e-6)


def test_a_mid_epoch_checkpoint_does_not_resume_on_another_device_count():
    lengths = torch.randint(1, 9, (300,)).numpy()
    sampler = TokenBudgetBatchSampler(lengths, 64, True, 1, rank=0, world_size=2)
    with pytest.raises(UserError, match=r"by a run on 1 device\(s\); the rest of that epoch cannot be split over 2: "
                                        r"resume with train.devices=1"):
        sampler.resume(epoch=1, batches_done=3, world_size=1)
    single = TokenBudgetBatchSampler(lengths, 64, True, 1)
    sampler.resume(epoch=1, batches_done=len(single), world_size=1)  # saved at the epoch's end: fine
    assert sampler.epoch == 2
