"""`make repro` and `make ablations`: `dvc repro` of a pipeline with its trainings run side by side.

    python -m pipeline.commands.reproduce dvc.yaml                 # make repro
    python -m pipeline.commands.reproduce ablations/dvc.yaml       # make ablations
    python -m pipeline.commands.reproduce dvc.yaml --jobs 1        # plain `dvc repro dvc.yaml`

`dvc repro` runs one stage at a time, but it releases the repository's lock while a stage's command
runs, so separate `dvc repro --single-item` processes may run independent stages at once; each still
records its stage in the lock file, and a rerun skips what did not change. A training is many small
ops (a recurrence of 256-wide matmuls): a second thread speeds it up little, while a second training
on the other core nearly doubles the work done (docs/pipeline.md has the measurement). On a CUDA
machine the trainings would share the GPU, so there the default is one at a time.

1. `dvc repro` of what the trainings need (data preparation, sweeps);
2. the training stages of the pipeline (and those it reads from another one: the ablations compare
   with `make repro`'s headline pair), ``--jobs`` at a time with cores/jobs threads each, the longest
   first (by the minutes its last run recorded); each one's output in logs/<pipeline>/<stage>.log;
3. `dvc repro <pipeline>`: evaluation and reports (the trainings are up to date by then).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import UserError, stage_entry_point

TRAINING_COMMAND = "pipeline.stages.train"
LOGS = Path("logs")


def dvc(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # --wait-for-lock: side-by-side stages take the repository's lock in turn to read and write the
    # lock file; without it the second to ask fails at once.
    return subprocess.run([sys.executable, "-m", "dvc", "--wait-for-lock", *args], **kwargs)


def last_minutes(stage) -> float:
    """The minutes the stage's last training took (its metrics file), infinite when unknown: a
    training never run is scheduled first."""
    for out in stage.outs:
        path = Path(str(out.def_path))
        if out.metric and path.exists():
            try:
                return float(json.loads(path.read_text(encoding="utf-8"))["minutes_total"])
            except (ValueError, KeyError, TypeError):
                pass
    return float("inf")


def plan(pipeline: str) -> tuple[list[str], list[str]]:
    """(the stages the trainings depend on, the training stages, longest first) of the pipeline file
    and of what it reads from other pipelines."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            own = [stage for stage in graph if stage.path_in_repo == pipeline]
            if not own:
                raise UserError(f"{pipeline}: no DVC stages there (expected dvc.yaml or ablations/dvc.yaml)")
            needed = set(own).union(*(nx.descendants(graph, stage) for stage in own))
            trainings = [stage for stage in needed if TRAINING_COMMAND in str(stage.cmd)]
            inputs = set().union(*(nx.descendants(graph, stage) for stage in trainings)) - set(trainings)
            trainings.sort(key=lambda stage: (-last_minutes(stage), stage.addressing))
            return sorted(stage.addressing for stage in inputs), [stage.addressing for stage in trainings]
    except DvcException as error:
        raise UserError(f"{pipeline}: {str(error).strip().splitlines()[0]}") from None


def default_jobs(trainings: int) -> int:
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(os.cpu_count() or 1, trainings))


def log_folder(pipeline: str) -> Path:
    return LOGS / Path(pipeline).parent  # logs/ for dvc.yaml, logs/ablations/ for ablations/dvc.yaml


def log_path(pipeline: str, stage: str) -> Path:
    return log_folder(pipeline) / (stage.split(":")[-1].replace("@", "-") + ".log")


def train(pipeline: str, stage: str, threads: int) -> tuple[str, int, float]:
    log = log_path(pipeline, stage)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as output:
        done = dvc("repro", "--single-item", stage, stdout=output, stderr=subprocess.STDOUT, env=env)
    return stage, done.returncode, (time.monotonic() - start) / 60


def last_lines(path: Path, count: int = 5) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    return "\n".join(f"    {line}" for line in [line for line in lines if line.strip()][-count:])


def open_pipeline_run() -> None:
    """Create this pipeline execution's MLflow run before the side-by-side stages look it up, so two
    of them do not each create one. It stays open, as after any stage, until a report stage ends it."""
    from pipeline.tracking.runs import Tracker

    Tracker(load_params().mlflow).parent_run()


def train_side_by_side(pipeline: str, trainings: list[str], jobs: int) -> None:
    log_folder(pipeline).mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"training {len(trainings)} models, {jobs} at a time with {threads} thread(s) each "
          f"(progress of each: {log_folder(pipeline)}/<stage>.log)", flush=True)
    failed = []
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(train, pipeline, stage, threads) for stage in trainings]
        for count, future in enumerate(as_completed(running), 1):
            stage, code, minutes = future.result()
            state = "done" if code == 0 else f"FAILED (exit {code})"
            print(f"[{count}/{len(trainings)}, {(time.monotonic() - start) / 60:.1f} min] {stage}: {state} "
                  f"in {minutes:.1f} min", flush=True)
            if code != 0:
                failed.append(stage)
                print(last_lines(log_path(pipeline, stage)), flush=True)
    if failed:
        raise UserError(f"{len(failed)} training(s) failed: {', '.join(failed)} (their logs: "
                        f"{log_folder(pipeline)}/); the others are recorded in the lock files")


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="dvc repro of a pipeline with its trainings side by side.")
    parser.add_argument("pipeline", nargs="?", default="dvc.yaml", help="dvc.yaml (default) or ablations/dvc.yaml")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trainings at once (default: one per core on CPU, one on a CUDA machine)")
    arguments = parser.parse_args()
    if arguments.jobs is not None and arguments.jobs < 1:
        raise UserError(f"--jobs {arguments.jobs}: must be at least 1")
    pipeline = Path(arguments.pipeline).as_posix()
    inputs, trainings = plan(pipeline)
    jobs = arguments.jobs if arguments.jobs is not None else default_jobs(len(trainings))
    if jobs > 1 and len(trainings) > 1:
        if inputs and dvc("repro", *inputs).returncode != 0:
            raise UserError("dvc repro of the trainings' inputs failed (its output is above)")
        open_pipeline_run()
        train_side_by_side(pipeline, trainings, jobs)
    sys.exit(dvc("repro", pipeline).returncode)


if __name__ == "__main__":
    main()
