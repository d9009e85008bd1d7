"""Preemption on a real SLURM: SIGUSR1 mid-epoch (what `--signal=SIGUSR1@N` sends before the time
limit, here sent at once with `scancel --signal`) makes both srun ranks of the train stage checkpoint
at the same batch and rank 0 requeue the job; the job comes back (SLURM_RESTART_COUNT=1), resumes
from that checkpoint and ends with the epochs and weights of an uninterrupted job."""
import csv
import json
import re
import time

import torch

from tests.pipeline.cluster.projects import make_project

STAGE = "train_synthetic@rnnenc-gru"
LONGER = {"train": {"devices": 2, "precision": "32", "dev_bleu_every": 0, "max_epochs": 2,
                    "epochs": {"synthetic": {"rnnenc": 2, "rnnsearch": 1}}},
          # Long enough that the signal, sent 3 s into the first epoch, lands mid-epoch (one epoch of 3,000
          # pairs took ~4 s after the one-pass decoder: the signal then came after training).
          "synthetic": {"synthetic": {"pairs": 12000}}}


def workspace(root):
    (found,) = (root / "jobs").iterdir()  # the one commit's clone
    return found


# Per epoch: what the weights and the schedule decide. (train_loss_epoch and tokens are Lightning's
# running sums over the epoch's batches, which a mid-epoch checkpoint does not hold: after a resume
# they cover that epoch's remaining batches only.)
COMPARED = ("epoch", "step", "dev_loss", "dev_ppl", "lr")


def curve(folder):
    with (folder / "reports/train/synthetic/rnnenc-gru.csv").open() as handle:
        return [{key: row[key] for key in COMPARED} for row in csv.DictReader(handle)]


def weights(folder):
    return torch.load(folder / "checkpoints/synthetic/rnnenc-gru/last.ckpt", weights_only=False)["state_dict"]


def test_a_job_signalled_mid_epoch_requeues_and_ends_like_an_uninterrupted_one(clean_queue, tmp_path):
    slurm = clean_queue
    straight = make_project(tmp_path / "straight", LONGER, environment=slurm.environment())
    job, started = straight.submit("--stage", STAGE)
    assert slurm.wait(job, timeout=600) == "COMPLETED", straight.log(job)[-5000:]
    print(f"uninterrupted job: {time.monotonic() - started:.0f} s")

    interrupted = make_project(tmp_path / "interrupted", LONGER, environment=slurm.environment())
    job, started = interrupted.submit("--stage", STAGE)
    deadline = time.monotonic() + 300
    while "Epoch 0:" not in interrupted.log(job):  # training has started on both ranks
        assert time.monotonic() < deadline and slurm.job_state(job) in ("PENDING", "RUNNING"), interrupted.log(job)
        time.sleep(0.5)
    time.sleep(3)
    signalled = time.monotonic()
    slurm.command("scancel", "--signal=USR1", job)  # every task of the job's steps, not the batch shell
    assert slurm.wait(job, timeout=600) == "COMPLETED", interrupted.log(job)[-5000:]
    log = interrupted.log(job)
    print(f"requeue cycle (signal to the end of the resumed job): {time.monotonic() - signalled:.0f} s; "
          f"the whole job: {time.monotonic() - started:.0f} s")

    saved = re.findall(r"SIGUSR1: saved \S+last\.ckpt at step (\d+) \(epoch (\d+)\)", log)
    assert len(saved) == 2 and saved[0] == saved[1], log[-5000:]  # both ranks, the same batch
    step = int(saved[0][0])
    expected = curve(workspace(tmp_path / "straight"))
    first_epoch_steps = int(expected[0]["step"])
    assert 0 < step < int(expected[-1]["step"]) and step != first_epoch_steps  # mid-epoch
    assert "restart 1" in log and "resuming from" in log.split("restart 1", 1)[1]
    resumed = workspace(tmp_path / "interrupted")
    assert json.loads((resumed / "reports/train/synthetic/rnnenc-gru.json").read_text())["resumed"] is True
    # The dev losses, the learning rate and the final weights are an uninterrupted run's: the same
    # batches in the same order (the default cosine schedule included).
    assert curve(resumed) == expected
    final = [weights(workspace(tmp_path / name)) for name in ("straight", "interrupted")]
    assert final[0].keys() == final[1].keys() and all(torch.equal(final[0][k], final[1][k]) for k in final[0])
