"""SLURM preemption: SIGUSR1 before the time limit saves a checkpoint at a batch boundary and requeues the job.

`#SBATCH --signal=SIGUSR1@<seconds> --requeue` (pipeline/cluster/batch_script.py) sends every task
SIGUSR1 that long before the limit. Lightning's own auto-requeue handler saves inside the signal
handler, mid-step, and under DDP its barrier can meet another rank's gradient all-reduce (each rank
takes the signal at a different point). Here the handler only sets a flag; at the end of the next
training batch (srun.listen) all ranks agree on it (one boolean all-reduce), every rank joins the same
`save_checkpoint` (last.ckpt, which the train stage resumes from), and rank 0 runs `scontrol requeue`,
as Lightning does. SLURM then stops the job and starts it again; the run continues from that batch.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytorch_lightning as pl

from pipeline.errors import UserError
from pipeline.training import srun

REQUEUE_WAIT_S = 120  # SLURM stops a requeued job within KillWait (30 s by default)


def job_id() -> str:
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]


class RequeueOnSignal(pl.Callback):
    """Checkpoint to ``path`` and requeue the SLURM job once SIGUSR1 has arrived (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if not trainer.strategy.reduce_boolean_decision(srun.signalled(), all=False):
            return
        trainer.save_checkpoint(self.path)  # every rank: it ends in a barrier
        print(f"SIGUSR1: saved {self.path} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
              f"requeueing SLURM job {job_id()}", flush=True)
        if trainer.is_global_zero:
            requeued = subprocess.run(["scontrol", "requeue", job_id()], capture_output=True, text=True)
            if requeued.returncode != 0:
                raise UserError(f"scontrol requeue {job_id()} failed ({requeued.stderr.strip()}); "
                                f"submit the job again to resume from {self.path}")
        time.sleep(REQUEUE_WAIT_S)  # SLURM ends every rank now; still here means it did not
        raise UserError(f"SLURM job {job_id()} was not stopped after `scontrol requeue`; "
                        f"submit it again to resume from {self.path}")
