"""params.yaml's `cluster` section: where Ray runs, the SLURM allocation, and where a job's results go."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, field_validator

from pipeline.config.section import Section

# SLURM's --time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
TIME_LIMIT = re.compile(r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$")


class SlurmConfig(Section):
    """One allocation for the whole pipeline (`make slurm`): `#SBATCH` lines of the batch script.
    Training ranks per node are train.devices and nodes used by training are train.num_nodes."""

    partition: Optional[str]  # null: the cluster's default partition
    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(ge=0)
    cpus_per_task: int = Field(ge=1)
    time_limit: str  # SLURM's --time: 30, 4:00:00, 1-12:00:00, …
    account: Optional[str]
    qos: Optional[str]
    # Seconds before the time limit that the tasks get SIGUSR1: they save a checkpoint and requeue.
    requeue_signal_seconds: int = Field(ge=10)
    extra_sbatch: list[str]  # more options as they would follow `#SBATCH`, e.g. "--mem=64G"
    # Where each submitted commit gets its job workspace (a clone): a path every node sees.
    # null: .dvc/tmp/jobs in this checkout.
    workdir: Optional[str]

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: str) -> str:
        if not TIME_LIMIT.match(value):
            raise ValueError(f"{value!r} is not a SLURM time limit (minutes, HH:MM:SS or D-HH:MM:SS)")
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _extra(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if not line.startswith("-") or "\n" in line:
                raise ValueError(f"{line!r}: write one sbatch option per item, as it follows `#SBATCH`, "
                                 "e.g. \"--mem=64G\"")
        return lines


class ResultsConfig(Section):
    """Where a cluster job sends what it made: the experiment's git ref and its DVC-cached outputs."""

    git_remote: str  # a remote of this checkout (`git remote -v`) that the job can push to
    dvc_remote: Optional[str]  # null: the DVC default remote (`dvc remote default`)


class ClusterConfig(Section):
    """Where Ray runs (a local instance by default, or an existing cluster), the SLURM allocation
    and where a job's results go."""

    address: Optional[str]  # null: $RAY_ADDRESS, else start a local Ray instance
    # Trial checkpoints and results: a path every node sees (NFS) or an object store URI (s3://…).
    # null: ray_results/ in the project, enough for a single machine.
    storage_path: Optional[str]
    slurm: SlurmConfig
    results: ResultsConfig
