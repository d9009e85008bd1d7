"""Wall time of a Ray Tune sweep (the `tune` stage) and how many trials really trained at once.

    .venv/bin/python benchmarks/sweep.py                 # the default sweep: params.yaml's tune section
    .venv/bin/python benchmarks/sweep.py --model lm-gru --num-samples 8

Runs ``python -m pipeline.stages.tune <model>`` in a scratch folder beside the project's prepared data (so
``reports/tune`` and ``mlflow.db`` here stay untouched) and samples the process table twice a second:
a trial is training while its Ray Train worker processes (``ray::RayTrainWorker``) are alive. Prints
the wall time, trials per hour, the peak and mean number of trials training side by side, and the
sweep's own summary. Run it on an idle machine: every trial is timed in wall-clock.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

PROJECT = Path(__file__).resolve().parents[1]


def training_workers() -> int:
    count = 0
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any("RayTrainWorker" in part for part in process.info["cmdline"] or []):
                count += 1
        except psutil.Error:
            continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the first of tune.models")
    parser.add_argument("--num-samples", type=int)
    parser.add_argument("--max-concurrent-trials", type=int)
    arguments = parser.parse_args()
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    tune = params.setdefault("tune", {})
    model = arguments.model or tune["models"][0]
    tune["models"] = [model]
    if arguments.num_samples:
        tune["num_samples"] = arguments.num_samples
    if arguments.max_concurrent_trials:
        tune["max_concurrent_trials"] = arguments.max_concurrent_trials
    if not (PROJECT / "data/prepared/stats.json").exists():
        sys.exit("benchmarks/sweep.py: no data/prepared (run `dvc repro prepare` first)")

    with tempfile.TemporaryDirectory(prefix="sweep-benchmark-") as scratch:
        folder = Path(scratch)
        (folder / "data").mkdir()
        (folder / "data/prepared").symlink_to(PROJECT / "data/prepared")
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(training_workers())
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        environment = dict(os.environ, PYTHONPATH=str(PROJECT))
        started = time.monotonic()
        sampler.start()
        result = subprocess.run([sys.executable, "-m", "pipeline.stages.tune", model], cwd=folder, env=environment,
                                capture_output=True, text=True)
        wall = time.monotonic() - started
        done.set()
        sampler.join()
        if result.returncode != 0:
            sys.exit(f"the sweep failed:\n{result.stderr[-3000:]}")
        summary = json.loads((folder / f"reports/tune/{model}.json").read_text())

    workers = summary["resources_per_trial"]["workers"]
    busy = [count / workers for count in samples]
    trials = len(summary["trials"])
    print(f"sweep of {model}: {trials} trials ({summary['stopped_early']} stopped early by ASHA, "
          f"{summary['failed']} failed), max_concurrent_trials {summary['max_concurrent_trials']}, "
          f"{summary['resources_per_trial']} per trial")
    print(f"wall time {wall / 60:.2f} min (the stage's own count: {summary['wall_minutes']} min of Tuner.fit), "
          f"{trials / (wall / 3600):.1f} trials/hour")
    print(f"trials training at once: peak {max(busy, default=0):.0f}, mean {sum(busy) / max(len(busy), 1):.2f} "
          f"(sampled every 0.5 s)")
    print(f"best {summary['metric']}: {summary['best'][summary['metric']]:.4f} with {summary['best']['config']}")


if __name__ == "__main__":
    main()
