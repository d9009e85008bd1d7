"""Bring a cluster job's results into this checkout: `make results EXP=<experiment>`.

    python -m pipeline.commands.results slurm-1234      # a SLURM job's experiment
    python -m pipeline.commands.results ray-3f9c01ab    # a Ray job's

`dvc exp pull` fetches the experiment's git ref from ``cluster.results.git_remote`` and its cached
outputs from the DVC remote, then `dvc exp apply` puts it in the workspace: dvc.lock, metrics,
reports, figures and checkpoints as the job left them, so `dvc status` is clean. Commit them, and a
later job of that commit pulls instead of retraining.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pipeline.cluster.job import first_line, remote, run
from pipeline.config import load_params
from pipeline.errors import UserError, stage_entry_point

TIMEOUT_S = 3600  # checkpoints can be large


def dvc(*args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], Path.cwd(), TIMEOUT_S)


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Pull a cluster job's experiment and apply it here.")
    parser.add_argument("experiment", help="the name the submit command printed: slurm-<job id> or ray-<id>")
    arguments = parser.parse_args()
    params = load_params()
    git_remote = params.cluster.results.git_remote
    dvc_remote, _ = remote(Path.cwd(), params.cluster.results.dvc_remote)
    pulled = dvc("exp", "pull", "--force", "--remote", dvc_remote, git_remote, arguments.experiment)
    if pulled.returncode != 0:
        reason = first_line(pulled.stderr + pulled.stdout)
        if any(sign in reason for sign in ("not a valid experiment", "not find", "not exist", "No experiments")):
            raise UserError(f"experiment {arguments.experiment!r} is not on git remote {git_remote!r} yet: the job "
                            "pushes it when it ends (see its log; a failed job pushes nothing)")
        raise UserError(f"dvc exp pull {git_remote} {arguments.experiment}: {reason}")
    # `dvc exp apply` through DVC's API, to let outputs the job neither made nor fetched (stages it did
    # not run, absent from this checkout too) stay missing instead of failing the whole apply.
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            repo.experiments.apply(arguments.experiment, allow_missing=True)
    except DvcException as error:
        raise UserError(f"dvc exp apply {arguments.experiment}: {first_line(str(error))} "
                        "(commit or stash your changes first)") from None
    print(f"applied {arguments.experiment}: dvc.lock, metrics, reports and outputs are the job's "
          f"(git status shows them; commit to keep them)")


if __name__ == "__main__":
    main()
