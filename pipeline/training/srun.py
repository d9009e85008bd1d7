"""Training ranks started by `srun` across a SLURM allocation, in Lightning's convention.

The batch script (`make slurm`) runs `dvc repro` on the allocation's first node and exports
``BOTTLENECK_SRUN=1``. The train stage then does not fit in that process: it decides which
checkpoint to resume from (one decision, like rank 0's under Lightning's own launcher) and starts
``srun --nodes=train.num_nodes --ntasks-per-node=train.devices`` copies of itself, which find the
choice in their environment. Lightning's SLURMEnvironment reads each rank, the node list and the
master address from srun's variables.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import NoReturn, Optional

from pipeline.config import TrainConfig
from pipeline.errors import UserError

LAUNCH = "BOTTLENECK_SRUN"  # "1": this process starts the ranks; "rank": this process is one
_signalled = False


def _handle(number, frame) -> None:
    global _signalled
    _signalled = True


def listen() -> None:
    """Take SIGUSR1 from now on, SLURM's warning before the time limit (its default action would end the
    rank); pipeline/training/requeue.py acts on it. Called first thing, before the slow imports."""
    signal.signal(signal.SIGUSR1, _handle)


def signalled() -> bool:
    return _signalled


def requested() -> bool:
    return os.environ.get(LAUNCH) == "1"


def is_rank() -> bool:
    return os.environ.get(LAUNCH) == "rank"


def launch(config: TrainConfig, resume: Optional[Path], resume_variable: str) -> NoReturn:
    """Run this stage's command line again under srun, one task per device on ``num_nodes`` nodes."""
    if "SLURM_JOB_ID" not in os.environ:
        raise UserError(f"${LAUNCH}=1 outside a SLURM job: unset it, or submit with `make slurm`")
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
    if config.num_nodes > nodes:
        raise UserError(f"params.yaml: train.num_nodes={config.num_nodes} but SLURM job {os.environ['SLURM_JOB_ID']} "
                        f"has {nodes} node(s): raise cluster.slurm.nodes and submit again")
    srun = shutil.which("srun")
    if srun is None:
        raise UserError("srun is not on PATH inside the SLURM job: load the cluster's SLURM module in "
                        "cluster.slurm.extra_sbatch's environment or the batch script")
    command = [srun, f"--nodes={config.num_nodes}", f"--ntasks-per-node={config.devices}",
               f"--ntasks={config.num_nodes * config.devices}", "--kill-on-bad-exit=1"]
    if "SLURM_CPUS_PER_TASK" in os.environ:  # srun does not inherit sbatch's --cpus-per-task (SLURM ≥ 22.05)
        command.append(f"--cpus-per-task={os.environ['SLURM_CPUS_PER_TASK']}")
    environment = dict(os.environ, **{LAUNCH: "rank", resume_variable: str(resume or "")})
    print(f"training on {config.num_nodes} node(s) × {config.devices} rank(s) with srun"
          + (f", resuming from {resume}" if resume else ""), flush=True)
    result = subprocess.run([*command, sys.executable, "-m", "pipeline.stages.train", *sys.argv[1:]], env=environment)
    sys.exit(result.returncode)
