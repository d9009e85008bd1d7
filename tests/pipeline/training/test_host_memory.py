"""keep_freed_memory, measured on what it is for: RNNsearch training steps at the default sizes.

With glibc's default, each step's large tensors (the attention tanh of all steps, the loss gradient)
come back from mmap as fresh pages that fault on first write; kept in the heap, they come back mapped.
Each mode runs in its own process: the setting is process-wide and cannot be undone.
"""
import subprocess
import sys

import pytest

from tests.pipeline.helpers import REPO

STEPS = """
import resource, sys, torch
from pipeline.config import load_params
from pipeline.training.host_memory import keep_freed_memory
from pipeline.training.datamodule import collate
from pipeline.training.tasks import task_class

if sys.argv[1] == "keep":
    assert keep_freed_memory(), "glibc expected"
torch.manual_seed(0)
params = load_params("params.yaml")  # the default sizes and optimizer
train = {**params.train.model_dump(), "schedule": "none"}
task = task_class("rnnsearch-gru")("rnnsearch-gru", 2000, 10000, params.model.model_dump(), train)
optimizer = task.configure_optimizers()
optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
words = torch.randint(4, 2000, (48, 40)).numpy()  # 48 sentence pairs of 40 words
batch = collate([(i, words[i], words[i] * 5) for i in range(48)])

def step():
    loss, _ = task.training_loss(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


def faults_per_step(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", STEPS, mode], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    default, kept = faults_per_step("default"), faults_per_step("keep")
    # The attention tanh alone is 40 steps × 48 × 40 × 256 fp32 = 79 MB: ~19,000 pages of 4 KiB.
    assert default > 15_000, f"glibc's default should fault the step's large tensors in again: {default}/step"
    assert kept < default / 5, f"kept in the heap they should come back mapped: {kept} against {default} faults/step"
