"""The SLURM batch script `make slurm` writes: the allocation from params, then the whole pipeline in it.

The job works in a clone of the checkout at the submitted commit (one per commit, under
``cluster.slurm.workdir``), so the checkout stays free for work while it runs, a requeued job finds its
checkpoints again, and a resubmission of the same commit continues where a killed one stopped.
``dvc repro --pull`` drives the stages (fetching from the DVC remote what an earlier job pushed),
training stages spread over the allocation with srun (pipeline/training/srun.py), and
``dvc exp save`` + ``dvc exp push`` send the results to the remotes (pipeline/cluster/job.py).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from pipeline.cluster.job import Submission
from pipeline.config import Params

LOGS = "slurm-logs"  # in the checkout: slurm-<job id>.out, appended to across requeues


def workspace_root(checkout: Path, params: Params) -> Path:
    return Path(params.cluster.slurm.workdir).expanduser() if params.cluster.slurm.workdir else checkout / ".dvc/tmp/jobs"


def sbatch_options(params: Params, checkout: Path) -> list[str]:
    slurm, train = params.cluster.slurm, params.train
    options = ["--job-name=bottleneck",  # not "bash"/"interactive", which turn Lightning's SLURM detection off
               f"--nodes={slurm.nodes}",
               f"--ntasks-per-node={train.devices}",  # Lightning: one task per device, `srun` starts them
               f"--cpus-per-task={slurm.cpus_per_task}"]
    if slurm.gpus_per_node:
        options.append(f"--gpus-per-node={slurm.gpus_per_node}")
    options.append(f"--time={slurm.time_limit}")
    for name, value in (("partition", slurm.partition), ("account", slurm.account), ("qos", slurm.qos)):
        if value:
            options.append(f"--{name}={value}")
    # SIGUSR1 to every task (no "B:", which would signal only this script), then requeue (requeue.py).
    options += [f"--signal=SIGUSR1@{slurm.requeue_signal_seconds}", "--requeue", "--open-mode=append",
                f"--output={checkout / LOGS}/slurm-%j.out"]
    return options + list(slurm.extra_sbatch)


def render(params: Params, submission: Submission, stages: list[str], tracking_uri: str) -> str:
    checkout = submission.checkout
    work = workspace_root(checkout, params) / submission.commit[:12]
    venv = Path(sys.executable).parent
    q = shlex.quote
    lines = ["#!/bin/bash",
             f"# Written by `make slurm` from {checkout / 'params.yaml'} (cluster.slurm, train.devices, train.num_nodes).",
             *(f"#SBATCH {option}" for option in sbatch_options(params, checkout)),
             "set -euo pipefail",
             'echo "== $(date -u +%FT%TZ) job $SLURM_JOB_ID on $SLURM_JOB_NODELIST, restart ${SLURM_RESTART_COUNT:-0}"',
             f"export PATH={q(str(venv))}:$PATH  # python and dvc of the submitting checkout's environment",
             f"export MLFLOW_TRACKING_URI={q(tracking_uri)}  # where `make ui` looks",
             "export DVC_NO_ANALYTICS=1 BOTTLENECK_SRUN=1  # BOTTLENECK_SRUN: training ranks via srun",
             "# The job's workspace: a clone at the submitted commit, reused by a requeued or resubmitted job.",
             f"WORK={q(str(work))}",
             'if [ ! -d "$WORK/.git" ]; then',
             f'  rm -rf "$WORK.partial" && git clone --quiet --no-checkout {q(str(checkout))} "$WORK.partial"',
             f'  git -C "$WORK.partial" checkout --quiet --detach {submission.commit}',
             '  mv "$WORK.partial" "$WORK"',
             "fi",
             'cd "$WORK"',
             "# Remotes added with `dvc remote add --local` live in .dvc/config.local, which git does not carry.",
             f"if [ -f {q(str(checkout / '.dvc/config.local'))} ]; then cp {q(str(checkout / '.dvc/config.local'))} .dvc/; fi",
             *submission.job_commands("slurm-$SLURM_JOB_ID", stages)]
    return "\n".join(lines) + "\n"
