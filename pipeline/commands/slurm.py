"""Submit the pipeline (or some stages) to SLURM as one batch job: `make slurm`.

    python -m pipeline.commands.slurm                    # the whole pipeline
    python -m pipeline.commands.slurm --stage train@lm-gru
    python -m pipeline.commands.slurm --dry-run          # print the batch script, submit nothing

Writes the batch script from params.yaml (cluster.slurm for the allocation, train.devices ranks per
node on train.num_nodes nodes for training; pipeline/cluster/batch_script.py), submits it with
`sbatch` and prints the job id, where its log is and how to follow it. When it has finished,
`make results EXP=slurm-<job id>` brings its results into this checkout (docs/clusters.md).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from pipeline.cluster.batch_script import LOGS, render
from pipeline.cluster.job import first_line, prepare_submission
from pipeline.config import load_params
from pipeline.errors import ConfigError, UserError, stage_entry_point
from pipeline.tracking.store import tracking_uri

SBATCH_TIMEOUT_S = 120


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Run the pipeline as one SLURM job (params.yaml: cluster.slurm).")
    parser.add_argument("--stage", action="append", default=[], help="a stage to reproduce (repeatable); "
                        "default: the whole pipeline")
    parser.add_argument("--dry-run", action="store_true", help="print the batch script instead of submitting it")
    arguments = parser.parse_args()
    params = load_params()
    if params.train.num_nodes > params.cluster.slurm.nodes:
        raise ConfigError(f"params.yaml: train.num_nodes={params.train.num_nodes} is more than cluster.slurm.nodes="
                          f"{params.cluster.slurm.nodes}: the allocation must hold every training node")
    if params.train.accelerator in ("gpu", "cuda") and params.train.devices > params.cluster.slurm.gpus_per_node:
        raise ConfigError(f"params.yaml: train.devices={params.train.devices} GPUs per node but "
                          f"cluster.slurm.gpus_per_node={params.cluster.slurm.gpus_per_node}")
    checkout = Path.cwd()
    sbatch = shutil.which("sbatch")
    if sbatch is None and not arguments.dry_run:
        raise UserError("sbatch is not on PATH: run this on the cluster's login node (or load its SLURM module); "
                        "--dry-run prints the script without it")
    submission = prepare_submission(checkout, params)
    script = render(params, submission, arguments.stage, tracking_uri(params.mlflow))
    if arguments.dry_run:
        print(script, end="")
        return
    (checkout / LOGS).mkdir(exist_ok=True)
    try:
        submitted = subprocess.run([sbatch, "--parsable"], input=script, cwd=checkout, capture_output=True,
                                   text=True, timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"sbatch did not answer in {SBATCH_TIMEOUT_S} s: is slurmctld up? (sinfo)") from None
    if submitted.returncode != 0:
        reason = first_line(submitted.stderr).removeprefix("sbatch: error: ")
        raise UserError(f"sbatch refused the job: {reason} (params.yaml: cluster.slurm; "
                        "`sinfo` lists partitions, --dry-run prints the script)")
    job = submitted.stdout.strip().split(";")[0]
    print(f"submitted SLURM job {job}: commit {submission.commit[:8]}, "
          f"{' '.join(arguments.stage) or 'the whole pipeline'}")
    print(f"  its log:        {checkout / LOGS}/slurm-{job}.out  (tail -f it)")
    print(f"  its state:      squeue -j {job}    cancel: scancel {job}")
    print(f"  when it is done: make results EXP=slurm-{job}")


if __name__ == "__main__":
    main()
