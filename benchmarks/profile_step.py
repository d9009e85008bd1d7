"""Where a training step's time goes: torch.profiler over the training step of benchmarks/throughput.py.

The same step as throughput.py's (the task's `training_loss`, as `training_step` takes it, under the precision's
autocast, backward, clipping, the task's optimizer) on the first batches of the prepared corpus, at
params.yaml's sizes. Prints the ops with the most self time over `--steps` steps, the number of op
calls per step (op overhead: what dominates on a 2-core CPU and in kernel launches on a GPU) and
the ms per step.

    .venv/bin/python benchmarks/profile_step.py --model rnnsearch-gru --precision bf16-mixed
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import DATA, training_batches, training_step  # noqa: E402
from models.names import MODEL_NAMES  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.training.host_memory import keep_freed_memory  # noqa: E402
from pipeline.training.tasks import task_class  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rnnsearch-gru", choices=MODEL_NAMES)
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="bf16-mixed")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--sort", default="self_cpu_time_total", help="profiler column to sort by, e.g. count")
    parser.add_argument("--shapes", action="store_true", help="one row per op and input shapes (which matmul is it)")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="a prepared corpus (default data/prepared; data/synthetic: the controlled task)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)
    keep_freed_memory()  # as the train stage
    params = load_params(REPO / "params.yaml")
    sizes, train = params.model.model_dump(), {**params.train.model_dump(), "schedule": "none"}
    batches, vocab = training_batches(arguments.model, arguments.data, train, arguments.warmup_steps + arguments.steps)
    torch.manual_seed(train["seed"])
    task = task_class(arguments.model)(arguments.model, vocab["src"], vocab["tgt"], sizes, train)
    step = training_step(task, torch.device("cpu"), arguments.precision)

    for batch in batches[:arguments.warmup_steps]:
        step(batch)
    measured = batches[arguments.warmup_steps:]
    started = time.perf_counter()
    for batch in measured:
        step(batch)
    seconds = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU], record_shapes=arguments.shapes) as profiler:
        for batch in measured:
            step(batch)
    events = profiler.key_averages(group_by_input_shape=arguments.shapes)
    calls = sum(event.count for event in events if not event.key.startswith(("autograd::", "ProfilerStep")))
    tokens = sum(int(b["tgt_lengths"].sum()) + len(b["tgt_lengths"]) for b in measured)
    print(f"{arguments.model} {arguments.precision}: {seconds / len(measured) * 1e3:.0f} ms/step unprofiled, "
          f"{tokens / seconds:,.0f} target tok/s; {calls / len(measured):,.0f} op calls/step "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(events.table(sort_by=arguments.sort, row_limit=arguments.top, max_name_column_width=40,
                         max_shapes_column_width=90))


if __name__ == "__main__":
    main()
