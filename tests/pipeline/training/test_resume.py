"""Mid-epoch resume: a run killed by SIGKILL and resumed from last.ckpt trains on exactly the batches,
in the same order, that an uninterrupted run does (pipeline.training.datamodule.ResumableLoader)."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.pipeline.helpers import REPO
from tests.pipeline.training.tiny_corpus import write_tiny_corpus

CHECKPOINT_EVERY = 8


def probe(data, output, every, *kill_at):
    output.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "tests.pipeline.training.resume_probe", str(data), str(output), str(every),
                           *map(str, kill_at)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)


def steps(output):
    return [json.loads(line) for line in (output / "batches.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = write_tiny_corpus(root / "tiny")
    result = probe(data, root / "straight", CHECKPOINT_EVERY)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = steps(root / "straight")
    return data, root / "straight", expected, sum(1 for step in expected if step["epoch"] == 0)


@pytest.mark.parametrize("where", ["mid-epoch", "last batch of an epoch"])
def test_a_killed_run_resumes_with_the_batches_of_an_uninterrupted_run(uninterrupted, tmp_path, where):
    data, straight, expected, per_epoch = uninterrupted
    if where == "mid-epoch":  # in the second epoch, a checkpoint that is itself mid-epoch
        every = CHECKPOINT_EVERY
        checkpoint = (per_epoch + per_epoch // 2) // every * every
        assert per_epoch < checkpoint < 2 * per_epoch and checkpoint % per_epoch != 0
    else:  # saved on the first epoch's last batch, before Lightning closes the epoch
        every = checkpoint = per_epoch
    killed = probe(data, tmp_path, every, checkpoint + 3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(steps(tmp_path)) == checkpoint + 3  # 3 steps trained after the checkpoint, then lost

    resumed = probe(data, tmp_path, every)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning for a loader without state
    log = steps(tmp_path)
    replayed = log[checkpoint + 3:]  # what the resumed run trained on
    assert replayed[0]["step"] == checkpoint
    assert log[:checkpoint] + replayed == expected
    # Same batches, same optimizer state: the same weights, bit for bit (no dropout, one thread).
    final = [torch.load(folder / "final.pt") for folder in (straight, tmp_path)]
    assert all(torch.equal(final[0][key], final[1][key]) for key in final[0])
