"""Submit the pipeline (or some stages) to a Ray cluster as a Ray job: `make submit`.

    python -m pipeline.commands.submit                          # the whole pipeline, returns at once
    python -m pipeline.commands.submit --stage tune@lm-gru --wait
    make submit ARGS="--stage evaluate --wait"

The job runs the current commit, which must be on the git remote ``cluster.results.git_remote``:
the project directory is uploaded as its working directory (Ray skips what `.gitignore` lists: the
venv, prepared data, checkpoints and the DVC cache stay here; Ray's workers import the code from it),
the job clones that commit into a folder of its own, runs `dvc repro --pull` (outputs an earlier job pushed are fetched, not remade) and pushes
the results as a DVC experiment, ``ray-<id>``, that `make results EXP=ray-<id>` brings here
(pipeline/cluster/job.py). MLflow runs reach your server when ``MLFLOW_TRACKING_URI`` is set (the
embedded sqlite store would stay on the cluster). The address is ``--address``, else ``cluster.address`` in params, else
``$RAY_ADDRESS``, else the local dashboard ``http://127.0.0.1:8265``. A cluster with token auth
(Ray's default) needs ``RAY_AUTH_MODE=token`` and the token (``RAY_AUTH_TOKEN`` or
``~/.ray/auth_token``) here too: see the README.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shlex
import sys
import time
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import UserError, stage_entry_point
from pipeline.cluster.job import Submission, prepare_submission, require_pushed

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Large or machine-specific paths that .gitignore may not cover (Ray leaves out .git itself).
EXCLUDES = ["/.venv", "/.dvc/cache", "/.dvc/tmp", "/ray_results", "/mlruns", "/mlartifacts",
            "/mlflow.db*", "/checkpoints", "/slurm-logs"]
PASSED_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "DVC_NO_ANALYTICS", "RAY_USAGE_STATS_ENABLED")


def entrypoint(submission: Submission, experiment: str, stages: list[str]) -> str:
    """The job's command: bash (Ray runs entrypoints with /bin/sh)."""
    q = shlex.quote
    script = "\n".join([
        "set -euo pipefail",
        # A clone of the commit of its own: the upload has no .git, and Ray extracts one upload once
        # for every job of the same content, so jobs would share (and change) one folder.
        f'WORK="${{TMPDIR:-/tmp}}/bottleneck-{experiment}"',
        f'git clone --quiet --no-checkout {q(submission.git_url)} "$WORK" && cd "$WORK"',
        f"git checkout --quiet --detach {submission.commit}",
        # .dvc/config.local stays here (.gitignore): name the remote again.
        f"python -m dvc remote add --local --force --default {q(submission.dvc_remote)} {q(submission.dvc_url)}",
        *submission.job_commands(experiment, stages)])
    return f"bash -c {q(script)}"


def follow(client, job_id: str) -> str:
    """Stream the job's logs here until it ends; returns its final status."""
    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(stream())
    while not (status := client.get_job_status(job_id)).is_terminal():
        time.sleep(1)
    return str(status.value if hasattr(status, "value") else status)


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Submit `dvc repro` to a Ray cluster as a Ray job.")
    parser.add_argument("--address", help="the cluster's dashboard, e.g. http://head:8265")
    parser.add_argument("--stage", action="append", default=[], help="a stage to reproduce (repeatable); "
                        "default: the whole pipeline")
    parser.add_argument("--wait", action="store_true", help="follow the logs; exit non-zero if the job fails")
    arguments = parser.parse_args()
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    # Ray's packaging chatter (a line per .gitignore it honours) is not ours to show: the job's log is.
    for name in [name for name in logging.root.manager.loggerDict if name.startswith("ray")]:
        logging.getLogger(name).setLevel(logging.ERROR)

    params = load_params()
    submission = prepare_submission(Path.cwd(), params)
    require_pushed(submission, params)
    address = arguments.address or params.cluster.address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    if address.startswith("ray://"):
        raise UserError(f"--address {address!r}: give the dashboard's http://host:port (job submission "
                        "goes through the dashboard, default port 8265)")
    environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    experiment = f"ray-{secrets.token_hex(4)}"
    command = entrypoint(submission, experiment, arguments.stage)
    try:
        client = JobSubmissionClient(address)
        job_id = client.submit_job(
            entrypoint=command, submission_id=f"raysubmit_{experiment}",
            runtime_env={"working_dir": str(Path.cwd()), "excludes": EXCLUDES, "env_vars": environment},
            metadata={"project": "bottleneck", "git_commit": submission.commit, "experiment": experiment,
                      "stages": " ".join(arguments.stage) or "all"},
        )
    except AuthenticationError:
        raise UserError(f"{address}: the cluster refused our Ray auth token: set RAY_AUTH_MODE=token and the "
                        "cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token (README: Ray cluster)") from None
    except (ConnectionError, RuntimeError) as error:
        raise UserError(f"{address}: cannot reach the Ray dashboard ({str(error).strip().splitlines()[0]})") from None
    print(f"submitted {job_id} to {address}: commit {submission.commit[:8]}, "
          f"{' '.join(arguments.stage) or 'the whole pipeline'}")
    print(f"  follow its logs:  ray job logs --address {address} --follow {job_id}")
    print(f"  its status:       ray job status --address {address} {job_id}")
    print(f"  the dashboard:    {address}")
    print(f"  when it is done:  make results EXP={experiment}")
    if not arguments.wait:
        return
    status = follow(client, job_id)
    if status != "SUCCEEDED":
        message = (client.get_job_info(job_id).message or "").strip().splitlines()
        raise UserError(f"job {job_id} {status}" + (f": {message[-1]}" if message else ""))
    print(f"job {job_id} SUCCEEDED", file=sys.stderr)


if __name__ == "__main__":
    main()
