"""`make ablations`: the ablations' pipeline (ablations/dvc.yaml) with its trainings run side by side.

    python -m pipeline.commands.ablations              # as many trainings at once as there are cores
    python -m pipeline.commands.ablations --jobs 1     # one at a time, every core on each: plain `dvc repro`

`dvc repro` runs one stage at a time, but it releases the repository's lock while a stage's command
runs, so separate `dvc repro --single-item` processes may run independent stages at once; each still
records its stage in the lock file, and a rerun skips what did not change. The trainings are many
small ops (a recurrence of 256-wide matmuls): a second thread speeds each op up little, a second
training on the other core nearly doubles the work done (docs/ablations.md has the measurement).

1. `dvc repro` of the trainings' inputs (the synthetic task and its reordered twin);
2. the training stages, the headline pair's (reproduced when stale) and each variant's, ``--jobs`` at
   a time with cores/jobs threads each; a training's output goes to logs/ablations/<stage>.log;
3. `dvc repro ablations/dvc.yaml`: evaluation and report (the trainings are up to date by then).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import UserError, stage_entry_point
from pipeline.evaluation.ablations import HEADLINE

ABLATIONS = "ablations/dvc.yaml"
INPUTS = ["dvc.yaml:prepare_synthetic", f"{ABLATIONS}:prepare_reordered"]
LOGS = Path("logs/ablations")


def dvc(*args: str, **kwargs) -> subprocess.CompletedProcess:
    # --wait-for-lock: the side-by-side stages take the repository's lock in turn to read and write
    # dvc.lock; without it the second to ask fails at once.
    return subprocess.run([sys.executable, "-m", "dvc", "--wait-for-lock", *args], **kwargs)


def training_stages(variants: dict) -> list[str]:
    """The headline pair, then the variants, the 16-epoch RNNenc ones before the 3-epoch RNNsearch
    ones: the long trainings start first, so the short ones fill the end of the schedule."""
    headline = [f"dvc.yaml:train_synthetic@{model}" for model in HEADLINE]
    ordered = sorted(variants, key=lambda name: variants[name].model.startswith("rnnsearch"))
    return headline + [f"{ABLATIONS}:train_ablation@{name}" for name in ordered]


def log_path(stage: str) -> Path:
    return LOGS / (stage.split(":")[-1].replace("@", "-") + ".log")


def train(stage: str, threads: int) -> tuple[str, int, float]:
    log = log_path(stage)
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
    of them do not each create one. It stays open, as after any stage, until report_ablations ends it."""
    from pipeline.tracking.runs import Tracker

    Tracker(load_params().mlflow).parent_run()


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Reproduce ablations/dvc.yaml with its trainings side by side.")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trainings at once (default: one per core, at most the number of trainings)")
    arguments = parser.parse_args()
    variants = load_params().ablations.variants
    stages = training_stages(variants)
    cores = os.cpu_count() or 1
    jobs = arguments.jobs if arguments.jobs is not None else min(cores, len(stages))
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    if jobs == 1:  # nothing side by side: DVC's own order, every core on each stage
        sys.exit(dvc("repro", ABLATIONS).returncode)

    if dvc("repro", *INPUTS).returncode != 0:
        raise UserError(f"dvc repro {' '.join(INPUTS)} failed (its output is above)")
    open_pipeline_run()
    LOGS.mkdir(parents=True, exist_ok=True)
    threads = max(1, cores // jobs)
    print(f"training {len(stages)} models, {jobs} at a time with {threads} thread(s) each "
          f"(progress of each: {LOGS}/<stage>.log)", flush=True)
    failed = []
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(train, stage, threads) for stage in stages]
        for count, future in enumerate(as_completed(running), 1):
            stage, code, minutes = future.result()
            state = "done" if code == 0 else f"FAILED (exit {code})"
            print(f"[{count}/{len(stages)}, {(time.monotonic() - start) / 60:.1f} min] {stage}: {state} "
                  f"in {minutes:.1f} min", flush=True)
            if code != 0:
                failed.append(stage)
                print(last_lines(log_path(stage)), flush=True)
    if failed:
        raise UserError(f"{len(failed)} training(s) failed: {', '.join(failed)} (logs in {LOGS}/); "
                        "the others are recorded in the lock files and will not rerun")
    sys.exit(dvc("repro", ABLATIONS).returncode)


if __name__ == "__main__":
    main()
