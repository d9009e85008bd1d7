"""Training steps with glibc's default allocator against freed memory kept (pipeline.training.host_memory).

Alternating fresh processes, one mode each (the setting is process-wide): ms per step, minor page
faults per step, and a digest of the parameters after the steps, which must be the same in both
modes (the allocator places tensors, it computes nothing). The step is throughput.py's (the task's
training loss under the precision's autocast, backward, clipping, the task's optimizer) on the
first batches of a prepared corpus at params.yaml's sizes. This machine's speed swings from minute
to minute, so the rounds alternate and the summary is the median of each round's ratio.

    .venv/bin/python benchmarks/page_faults.py --model rnnsearch-gru --threads 1 --rounds 3
    .venv/bin/python benchmarks/page_faults.py --model rnnenc-gru --data data/synthetic   # the controlled task
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.throughput import DATA, training_batches, training_step  # noqa: E402
from models.names import MODEL_NAMES  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.training.host_memory import keep_freed_memory  # noqa: E402
from pipeline.training.precision import resolve as resolve_precision  # noqa: E402
from pipeline.training.tasks import task_class  # noqa: E402

MODES = ("default", "kept")


def steps(model: str, data: Path, threads: int, warmup: int, timed: int, mode: str) -> dict:
    """In this process: warm-up and timed steps in one allocator mode."""
    if mode == "kept" and not keep_freed_memory():
        raise SystemExit("page_faults.py: this C library is not glibc; there is nothing to compare")
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    params = load_params(REPO / "params.yaml")
    sizes, train = params.model.model_dump(), {**params.train.model_dump(), "schedule": "none"}
    batches, vocab = training_batches(model, data, train, warmup + timed)
    torch.manual_seed(train["seed"])
    task = task_class(model)(model, vocab["src"], vocab["tgt"], sizes, train)
    precision = resolve_precision(params.train.precision, "cpu").value  # as the train stage resolves it
    step = training_step(task, torch.device("cpu"), precision)

    for batch in batches[:warmup]:
        step(batch)
    faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256()
    for parameter in task.parameters():
        digest.update(parameter.detach().numpy().tobytes())
    return {"ms_per_step": seconds / timed * 1e3,
            "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / timed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters_sha256": digest.hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rnnsearch-gru", choices=MODEL_NAMES)
    parser.add_argument("--data", type=Path, default=DATA, help="a prepared corpus (data/synthetic: the controlled task)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the pipeline trains at 1 per job)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # a child process: one mode, JSON out
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(steps(arguments.model, arguments.data, arguments.threads, arguments.warmup_steps,
                               arguments.steps, arguments.one)))
        return
    print(f"{arguments.model} on {arguments.data}, {arguments.threads} thread(s), "
          f"{arguments.warmup_steps} warm-up + {arguments.steps} timed steps per process")
    print(f"{'round':>5} {'mode':>8} {'ms/step':>8} {'faults/step':>12} {'peak RSS MB':>12}  parameters")
    ratios, digests = [], set()
    for round_number in range(1, arguments.rounds + 1):
        results = {}
        for mode in MODES:
            child = subprocess.run([sys.executable, __file__, "--one", mode, "--model", arguments.model,
                                    "--data", str(arguments.data), "--threads", str(arguments.threads),
                                    "--warmup-steps", str(arguments.warmup_steps), "--steps", str(arguments.steps)],
                                   capture_output=True, text=True, cwd=REPO)
            if child.returncode:
                raise SystemExit(child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "child failed")
            results[mode] = result = json.loads(child.stdout.strip().splitlines()[-1])
            digests.add(result["parameters_sha256"])
            print(f"{round_number:>5} {mode:>8} {result['ms_per_step']:>8.0f} {result['faults_per_step']:>12,.0f} "
                  f"{result['peak_rss_mb']:>12,.0f}  {result['parameters_sha256']}")
        ratios.append(results["default"]["ms_per_step"] / results["kept"]["ms_per_step"])
    print(f"speed-up, kept over default (median of the rounds' ratios): {statistics.median(ratios):.2f}× "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    print("parameters after the steps: " + ("the same in every process" if len(digests) == 1
                                           else f"DIFFER ({len(digests)} digests)"))


if __name__ == "__main__":
    main()
