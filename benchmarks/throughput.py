"""Training and decoding throughput, and peak memory, of every architecture at params.yaml's sizes.

For each model name (lm-*, rnnenc-*, rnnsearch-* × rnn/lstm/gru/jordan) at the `model` sizes of
params.yaml, on the prepared corpus `data/prepared` (run `python -m pipeline.prepare` first):

- train tok/s: target tokens (EOS included, padding not) per second over `--train-steps` optimizer
  steps after `--warmup-steps`, on the first batches of `PreparedDataModule.train_dataloader()`
  (params' batch_tokens, batch_sentences and seed; collected before timing, so loading is not
  counted). A step is what Lightning runs: the task's `logits_and_targets` + `masked_nll`, backward,
  gradient-norm clipping, and the optimizer of the task's `configure_optimizers`. bf16 autocast on
  CUDA, fp32 on CPU; denormals flushed to zero as in pipeline.train.
- decoding sentences/s of the untrained model (initial weights), greedy and beam 5, with
  `TranslationTask.translate` in fp32 on `--decode-sentences` test sentences spread evenly over
  the split, 64 per batch. Untrained outputs are not translations and their length sets the cost:
  greedy rarely picks EOS and runs to the length cap, while beam search stops as soon as its best
  extension is EOS, often after a few words. The mean output length is shown next to each rate.
  Language models have no source: their "greedy" column is ancestral sampling
  (`RNNLanguageModel.sample`, temperature 1, up to the corpus' max_len words) and beam is '-'.
- peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the growth of the process's peak
  RSS (ru_maxrss) from just before the model is built, weights and optimizer state included.
  Each model runs in a fresh process, so one model's freed memory does not hide the next one's.

Rates are wall-clock: other processes on the machine lower them, so the load average is printed
before and after the run.

    .venv/bin/python benchmarks/throughput.py                                   # all 12 models
    .venv/bin/python benchmarks/throughput.py --models rnnsearch-gru rnnenc-gru --device cuda
    .venv/bin/python benchmarks/throughput.py --train-steps 10 --json reports/throughput.json
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.loss import masked_nll  # noqa: E402
from models.registry import MODEL_NAMES, task_class  # noqa: E402
from models.search import greedy_search, max_lengths  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.datamodule import ParallelSplit, PreparedDataModule, collate  # noqa: E402
from pipeline.dev_bleu import DECODE_BATCH  # noqa: E402
from pipeline.vocabulary import Vocabulary  # noqa: E402

DATA = REPO / "data/prepared"
BEAM = 5
# ru_maxrss is in KiB on Linux, in bytes on macOS.
MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_BYTES


def decode_sample(count: int) -> list[dict[str, torch.Tensor]]:
    test = ParallelSplit(DATA / "test")
    indices = np.linspace(0, len(test) - 1, min(count, len(test))).astype(int)
    return [collate([test[int(i)] for i in indices[start:start + DECODE_BATCH]])
            for start in range(0, len(indices), DECODE_BATCH)]


def timed(device: torch.device, function, *args) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = function(*args)
    synchronize(device)
    return time.perf_counter() - start, result


def train_throughput(task, batches, warmup: int, device: torch.device) -> float:
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    label_smoothing, clip = task.train_config["label_smoothing"], task.train_config["gradient_clip"]
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    task.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        with autocast:
            logits, targets = task.logits_and_targets(batch)
            loss = masked_nll(logits, targets, label_smoothing=label_smoothing)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(task.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:warmup]:
        step(batch)
    measured = batches[warmup:]
    # Counted on the CPU tensors: reading them back from the GPU would synchronize every step.
    tokens = sum(int(b["tgt_lengths"].sum()) + len(b["tgt_lengths"]) for b in measured)
    seconds, _ = timed(device, lambda: [step(batch) for batch in measured])
    return tokens / seconds


def measure(job: tuple[str, str, dict, dict, argparse.Namespace]) -> dict:
    """One model, in its own process: parameters, train tok/s, decode sentences/s, peak memory."""
    name, device_name, sizes, train, arguments = job
    device = torch.device(device_name)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)  # as pipeline.train and pipeline.evaluate: denormals are ~100× slower on x86
    language_model = name.startswith("lm-")
    datamodule = PreparedDataModule(DATA, train["batch_tokens"], train["seed"], target_only=language_model,
                                    batch_sentences=train["batch_sentences"])
    batches = list(itertools.islice(datamodule.train_dataloader(), arguments.warmup_steps + arguments.train_steps))
    decode_batches = decode_sample(arguments.decode_sentences)
    vocab = {side: len(Vocabulary.load(DATA / f"vocab/{side}.json")) for side in ("src", "tgt")}

    def fresh_task():
        torch.manual_seed(train["seed"])
        return task_class(name)(name, vocab["src"], vocab["tgt"], sizes, train).to(device)

    rss_before = peak_rss()
    task = fresh_task()
    row = {"model": name, "parameters": sum(p.numel() for p in task.model.parameters())}
    row["train_tokens_per_s"] = train_throughput(task, batches, arguments.warmup_steps, device)
    # Decode with the initial weights again: a few steps of training already change how soon a
    # model emits EOS, which would tie the decoding numbers to --train-steps.
    del task
    task = fresh_task()

    sentences = sum(len(batch["index"]) for batch in decode_batches)
    if language_model:
        max_len = json.loads((DATA / "corpus.json").read_text())["max_len"]
        generator = torch.Generator(device).manual_seed(train["seed"])
        def sample() -> list[list[int]]:
            return [s for batch in decode_batches
                    for s in task.model.sample(len(batch["index"]), max_len, generator=generator)]

        seconds, samples = timed(device, sample)
        row.update(greedy_sentences_per_s=sentences / seconds, greedy_length=float(np.mean([len(s) for s in samples])),
                   beam_sentences_per_s=None, beam_length=None)
    else:
        def translate(beam: int) -> list:
            return [h for batch in decode_batches for h in task.translate(batch["src"], batch["src_lengths"], beam)]

        for label, beam in (("greedy", 1), ("beam", BEAM)):
            seconds, hypotheses = timed(device, translate, beam)
            row[f"{label}_sentences_per_s"] = sentences / seconds
            row[f"{label}_length"] = float(np.mean([len(h.tokens) for h in hypotheses]))

    row["peak_mib"] = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                       else peak_rss() - rss_before) / 2**20
    return row


def cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def environment(device: torch.device, params, arguments: argparse.Namespace) -> dict:
    sample = decode_sample(arguments.decode_sentences)
    src_lengths = torch.cat([batch["src_lengths"] for batch in sample])
    search = inspect.signature(greedy_search).parameters
    cap = max_lengths(src_lengths, search["max_len_a"].default, search["max_len_b"].default)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS growth (ru_maxrss)",
        "model_sizes": params.model.model_dump(), "batch_tokens": params.train.batch_tokens,
        "warmup_steps": arguments.warmup_steps, "train_steps": arguments.train_steps,
        "decode_sentences": len(src_lengths), "mean_source_length": float(src_lengths.float().mean()),
        "mean_length_cap": float(cap.float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="NAME")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--decode-sentences", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a busy machine")
    parser.add_argument("--json", type=Path, help="also write the environment and rows here")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)  # for the header; each model's process sets its own
    if not (DATA / "train").is_dir():
        raise SystemExit(f"{DATA} is missing: run `python -m pipeline.prepare` first")
    device_name = ("cuda" if torch.cuda.is_available() else "cpu") if arguments.device == "auto" else arguments.device
    device = torch.device(device_name)

    # Read once here: every model gets the same sizes even if params.yaml changes during the run.
    params = load_params(REPO / "params.yaml")
    env = environment(device, params, arguments)
    # Other processes on the machine skew every rate: the load average says whether they ran.
    print(f"device: {env['device']}  torch {env['torch']}  threads: {env['threads']}  "
          f"precision: {env['precision']}  load average: {env['load_average']:.1f}")
    print(f"sizes: {env['model_sizes']}  batch_tokens: {env['batch_tokens']}  "
          f"steps: {env['warmup_steps']} warm-up + {env['train_steps']} timed")
    print(f"decoding: {env['decode_sentences']} test sentences, mean {env['mean_source_length']:.1f} source words, "
          f"mean length cap {env['mean_length_cap']:.1f}; lm-*: sampling in the greedy column")
    print(f"memory: {env['memory']}")
    print(f"{'model':<16} {'params':>10} {'train tok/s':>12} {'greedy/s':>9} {'len':>5} "
          f"{f'beam{BEAM}/s':>9} {'len':>5} {'peak MiB':>9}")

    sizes, train = params.model.model_dump(), params.train.model_dump()
    rows = []
    start = time.perf_counter()
    # A fresh process per model (spawn: safe with CUDA and OpenMP) so peak memory is the model's own.
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for row in pool.imap(measure, [(name, device_name, sizes, train, arguments) for name in arguments.models]):
            rows.append(row)
            print(f"{row['model']:<16} {row['parameters']:>10,} {row['train_tokens_per_s']:>12,.0f} "
                  f"{row['greedy_sentences_per_s']:>9.1f} {row['greedy_length']:>5.1f} "
                  f"{cell(row['beam_sentences_per_s'], '.1f'):>9} {cell(row['beam_length'], '.1f'):>5} "
                  f"{row['peak_mib']:>9,.0f}", flush=True)
    print(f"wall time: {time.perf_counter() - start:.0f} s  load average: {os.getloadavg()[0]:.1f}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
