"""Mid-epoch resume: a run killed by SIGKILL and resumed from last.ckpt trains on exactly the batches,
in the same order, that an uninterrupted run does (pipeline.datamodule.ResumableLoader)."""
import json
import os
import signal
import subprocess
import sys

import torch

from tests.pipeline.helpers import REPO
from tests.training.resume_probe import CHECKPOINT_EVERY
from tests.training.tiny_corpus import write_tiny_corpus


def probe(data, output, *kill_at):
    output.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "tests.training.resume_probe", str(data), str(output),
                           *map(str, kill_at)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)


def steps(output):
    return [json.loads(line) for line in (output / "batches.jsonl").read_text().splitlines()]


def test_a_run_killed_mid_epoch_resumes_with_the_batches_of_an_uninterrupted_run(tmp_path):
    data = write_tiny_corpus(tmp_path / "tiny")
    uninterrupted = probe(data, tmp_path / "straight")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    expected = steps(tmp_path / "straight")
    per_epoch = sum(1 for step in expected if step["epoch"] == 0)
    # Killed in the second epoch, a few steps after a checkpoint that is itself mid-epoch.
    checkpoint = (per_epoch + per_epoch // 2) // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    assert per_epoch < checkpoint < 2 * per_epoch and checkpoint % per_epoch != 0
    killed = probe(data, tmp_path / "killed", checkpoint + 3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(steps(tmp_path / "killed")) == checkpoint + 3  # 3 steps trained after the checkpoint, then lost

    resumed = probe(data, tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning for a loader without state
    log = steps(tmp_path / "killed")
    replayed = log[checkpoint + 3:]  # what the resumed run trained on
    assert replayed[0]["step"] == checkpoint
    assert log[:checkpoint] + replayed == expected
    # Same batches, same optimizer state: the same weights, bit for bit (no dropout, one thread).
    final = [torch.load(tmp_path / name / "final.pt") for name in ("straight", "killed")]
    assert all(torch.equal(final[0][key], final[1][key]) for key in final[0])
