"""Training and decoding throughput, roofline fraction and peak memory of every architecture.

For each model name (lm-*, rnnenc-*, rnnsearch-* × rnn/lstm/gru/jordan) at the `model` sizes of
params.yaml, on the prepared corpus `data/prepared` (run `python -m pipeline.stages.prepare` first), in
each precision asked for (`--precision`: 32, bf16-mixed, or both):

- train tok/s: target tokens (EOS included, padding not) per second over `--train-steps` optimizer
  steps after `--warmup-steps`, on the first batches of `PreparedDataModule.train_dataloader()`
  (params' batch_tokens, batch_sentences and seed; collected before timing, so loading is not
  counted). A step is what Lightning runs: the task's `training_loss` (as `training_step` takes it)
  under the autocast of Lightning's precision plugin (bf16, no weight-cast cache), backward, gradient-norm
  clipping and the task's own optimizer. Denormals are flushed to zero as in pipeline.stages.train.
- roofline: model FLOPs per target token counted from the layer shapes (`models/flops.py`: matmuls
  only, training = 3 × forward), the GFLOP/s this achieves, and its fraction of the machine's matmul
  peak in that precision, measured in the same run (a 2048² matmul, the same thread count).
- decoding: greedy and beam-5 sentences/s and output tokens/s (EOS included) with
  `TranslationTask.translate`, under the same precision, on `--decode-sentences` test sentences
  spread evenly over the split and decoded longest first, 64 per batch (as the evaluate stage does).
  Weights: the trained checkpoint `checkpoints/bible/<model>/best.ckpt` when it exists (column
  "weights": trained), else the initial weights (untrained: its outputs are not translations, and
  greedy runs to the length cap, the worst case). Language models have no source: "greedy" is
  ancestral sampling (`RNNLanguageModel.sample`, up to the corpus' max_len words), beam is '-'.
- peak memory: on CUDA `torch.cuda.max_memory_allocated`; on CPU the growth of the process's peak
  RSS (ru_maxrss) from just before the model is built. Each model × precision runs in a fresh
  process, so one model's freed memory does not hide the next one's.

Rates are wall-clock: other processes on the machine lower them, so the load average is printed
before and after the run.

    .venv/bin/python benchmarks/throughput.py                                   # all 12 models, both precisions
    .venv/bin/python benchmarks/throughput.py --models rnnsearch-gru rnnenc-gru --precision bf16-mixed
    .venv/bin/python benchmarks/throughput.py --train-steps 10 --json reports/throughput.json
"""
from __future__ import annotations

import argparse
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

from models.flops import training_flops  # noqa: E402
from models.names import MODEL_NAMES  # noqa: E402
from pipeline.training.tasks import task_class
from models.search import greedy_search, max_lengths  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.training.host_memory import keep_freed_memory  # noqa: E402
from pipeline.training.datamodule import ParallelSplit, PreparedDataModule, collate  # noqa: E402
from pipeline.training.dev_bleu import DECODE_BATCH  # noqa: E402
from pipeline.data.vocabulary import Vocabulary  # noqa: E402

DATA = REPO / "data/prepared"
CHECKPOINTS = REPO / "checkpoints/bible"
BEAM = 5
PRECISIONS = ("32", "bf16-mixed")
# ru_maxrss is in KiB on Linux, in bytes on macOS.
MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_BYTES


def autocast(precision: str, device: torch.device):
    """What Lightning's precision plugin wraps a step in (cache_enabled=False, as it does)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed", cache_enabled=False)


def matmul_peak(job: tuple[str, str, int]) -> float:
    """GFLOP/s of a 2048² matmul in one precision: the roofline's ceiling on this machine."""
    device_name, precision, threads = job
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    a, b = (torch.randn(2048, 2048, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    repeats = 20
    seconds, _ = timed(device, lambda: [a @ b for _ in range(repeats)])
    return 2 * 2048**3 * repeats / seconds / 1e9


def decode_sample(count: int) -> list[dict[str, torch.Tensor]]:
    """Test sentences spread over the split, longest first in batches of DECODE_BATCH (as evaluate)."""
    test = ParallelSplit(DATA / "test")
    indices = np.linspace(0, len(test) - 1, min(count, len(test))).astype(int)
    indices = sorted(indices, key=lambda i: -int(test.src.lengths[i]))
    return [collate([test[int(i)] for i in indices[start:start + DECODE_BATCH]])
            for start in range(0, len(indices), DECODE_BATCH)]


def timed(device: torch.device, function, *args) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = function(*args)
    synchronize(device)
    return time.perf_counter() - start, result


def training_batches(name: str, data: Path, train: dict, count: int) -> tuple[list[dict], dict[str, int]]:
    """The first ``count`` training batches of a prepared corpus (params' batch_tokens, batch_sentences
    and seed; collected before any timing) and its vocabulary sizes {"src": …, "tgt": …}."""
    datamodule = PreparedDataModule(data, train["batch_tokens"], train["seed"], target_only=name.startswith("lm-"),
                                    batch_sentences=train["batch_sentences"])
    batches = list(itertools.islice(datamodule.train_dataloader(), count))
    return batches, {side: len(Vocabulary.load(data / f"vocab/{side}.json")) for side in ("src", "tgt")}


def training_step(task, device: torch.device, precision: str):
    """One optimizer step as Lightning runs it, on a batch: the task's training loss under the precision's
    autocast, backward, gradient-norm clipping, the task's own optimizer. Puts the task in train mode."""
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    clip = task.train_config["gradient_clip"]
    task.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        with autocast(precision, device):
            loss, _ = task.training_loss(batch)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(task.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def train_throughput(task, batches, warmup: int, device: torch.device, precision: str) -> float:
    step = training_step(task, device, precision)
    for batch in batches[:warmup]:
        step(batch)
    measured = batches[warmup:]
    # Counted on the CPU tensors: reading them back from the GPU would synchronize every step.
    tokens = sum(int(b["tgt_lengths"].sum()) + len(b["tgt_lengths"]) for b in measured)
    seconds, _ = timed(device, lambda: [step(batch) for batch in measured])
    return tokens / seconds


def measure(job: tuple[str, str, str, dict, dict, argparse.Namespace]) -> dict:
    """One model in one precision, in its own process: train tok/s, FLOPs, decode rates, memory."""
    name, precision, device_name, sizes, train, arguments = job
    device = torch.device(device_name)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)  # as pipeline.stages.train and pipeline.stages.evaluate: denormals are ~100× slower on x86
    if not arguments.default_malloc:
        keep_freed_memory()  # as the train stage: the step's large tensors reuse the heap, no page faults
    language_model = name.startswith("lm-")
    batches, vocab = training_batches(name, DATA, train, arguments.warmup_steps + arguments.train_steps)
    decode_batches = decode_sample(arguments.decode_sentences)

    rss_before = peak_rss()
    torch.manual_seed(train["seed"])
    task = task_class(name)(name, vocab["src"], vocab["tgt"], sizes, train).to(device)
    row = {"model": name, "precision": precision, "parameters": sum(p.numel() for p in task.model.parameters())}
    row["train_tokens_per_s"] = train_throughput(task, batches, arguments.warmup_steps, device, precision)
    measured = batches[arguments.warmup_steps:]
    flops = sum(training_flops(name, sizes, vocab["src"], vocab["tgt"], b["src_lengths"].tolist(),
                               b["tgt_lengths"].tolist()) for b in measured)
    tokens = sum(int(b["tgt_lengths"].sum()) + len(b["tgt_lengths"]) for b in measured)
    row["flops_per_token"] = flops / tokens
    row["gflops"] = row["flops_per_token"] * row["train_tokens_per_s"] / 1e9
    del task

    checkpoint = CHECKPOINTS / name / "best.ckpt"
    row["weights"] = "trained" if checkpoint.exists() and not arguments.untrained else "untrained"
    if row["weights"] == "trained":
        task = task_class(name).load_from_checkpoint(checkpoint, map_location=device, weights_only=True)
    else:
        torch.manual_seed(train["seed"])
        task = task_class(name)(name, vocab["src"], vocab["tgt"], sizes, train).to(device)
    task.eval()

    sentences = sum(len(batch["index"]) for batch in decode_batches)
    with autocast(precision, device):
        if language_model:
            max_len = json.loads((DATA / "corpus.json").read_text())["max_len"]
            generator = torch.Generator(device).manual_seed(train["seed"])

            def sample() -> list[list[int]]:
                return [s for batch in decode_batches
                        for s in task.model.sample(len(batch["index"]), max_len, generator=generator)]

            seconds, samples = timed(device, sample)
            row.update(greedy_sentences_per_s=sentences / seconds,
                       greedy_tokens_per_s=sum(len(s) + 1 for s in samples) / seconds,
                       beam_sentences_per_s=None, beam_tokens_per_s=None)
        else:
            def translate(beam: int) -> list:
                return [h for batch in decode_batches
                        for h in task.translate(batch["src"], batch["src_lengths"], beam)]

            for label, beam in (("greedy", 1), ("beam", BEAM)):
                seconds, hypotheses = timed(device, translate, beam)
                row[f"{label}_sentences_per_s"] = sentences / seconds
                row[f"{label}_tokens_per_s"] = sum(len(h.tokens) + 1 for h in hypotheses) / seconds

    row["peak_mib"] = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                       else peak_rss() - rss_before) / 2**20
    return row


def plain_throughput(job: tuple[str, dict, dict, argparse.Namespace]) -> float:
    """Target tok/s of the plain reference trainer on the same batches as the models."""
    from benchmarks.plain_rnnsearch import PlainRNNSearch, train_step
    from models.sequences import add_bos_eos

    device_name, sizes, train, arguments = job
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.set_flush_denormal(True)
    if not arguments.default_malloc:
        keep_freed_memory()  # the same process settings as the models', so only the code differs
    batches, vocab = training_batches("rnnsearch-gru", DATA, train, arguments.warmup_steps + arguments.train_steps)
    torch.manual_seed(train["seed"])
    model = PlainRNNSearch(vocab["src"], vocab["tgt"], sizes["emb_size"], sizes["hidden_size"], sizes["maxout_size"],
                           sizes["attention_size"])
    optimizer = torch.optim.Adam(model.parameters(), lr=train["lr"])
    prepared = [(b["src"], b["src_lengths"], *add_bos_eos(b["tgt"], b["tgt_lengths"])[:2]) for b in batches]
    for batch in prepared[:arguments.warmup_steps]:
        train_step(model, optimizer, *batch)
    measured = batches[arguments.warmup_steps:]
    tokens = sum(int(b["tgt_lengths"].sum()) + len(b["tgt_lengths"]) for b in measured)
    seconds, _ = timed(torch.device(device_name),
                       lambda: [train_step(model, optimizer, *batch) for batch in prepared[arguments.warmup_steps:]])
    return tokens / seconds


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
        "memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS growth (ru_maxrss)",
        "model_sizes": params.model.model_dump(), "batch_tokens": params.train.batch_tokens,
        "warmup_steps": arguments.warmup_steps, "train_steps": arguments.train_steps,
        "decode_sentences": len(src_lengths), "mean_source_length": float(src_lengths.float().mean()),
        "mean_length_cap": float(cap.float().mean()),
        "malloc": "glibc default" if arguments.default_malloc else "freed memory kept (pipeline.training.host_memory)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="NAME")
    parser.add_argument("--precision", choices=(*PRECISIONS, "both"), default="both")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--decode-sentences", type=int, default=512)
    parser.add_argument("--untrained", action="store_true", help="decode with initial weights even if a checkpoint exists")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a busy machine")
    parser.add_argument("--plain", action="store_true",
                        help="also measure benchmarks/plain_rnnsearch.py (a plain fp32 PyTorch loop) at the same sizes")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (the train stage keeps freed memory: "
                             "pipeline.training.host_memory); compare the two in one run")
    parser.add_argument("--json", type=Path, help="also write the environment and rows here")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)  # for the header; each model's process sets its own
    if not (DATA / "train").is_dir():
        raise SystemExit(f"{DATA} is missing: run `python -m pipeline.stages.prepare` first")
    device_name = ("cuda" if torch.cuda.is_available() else "cpu") if arguments.device == "auto" else arguments.device
    device = torch.device(device_name)
    precisions = PRECISIONS if arguments.precision == "both" else (arguments.precision,)

    # Read once here: every model gets the same sizes even if params.yaml changes during the run.
    params = load_params(REPO / "params.yaml")
    env = environment(device, params, arguments)
    # No lr schedule: the cosine one needs a Trainer to know its length, and it costs nothing per step.
    sizes, train = params.model.model_dump(), {**params.train.model_dump(), "schedule": "none"}
    start = time.perf_counter()
    # A fresh process per measurement (spawn: safe with CUDA and OpenMP) so peak memory is its own.
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        env["matmul_peak_gflops"] = dict(zip(precisions, pool.map(
            matmul_peak, [(device_name, p, arguments.threads) for p in precisions], chunksize=1)))
        # Other processes on the machine skew every rate: the load average says whether they ran.
        print(f"device: {env['device']}  torch {env['torch']}  threads: {env['threads']}  "
              f"load average: {env['load_average']:.1f}")
        print("matmul peak (2048², GFLOP/s): " + ", ".join(f"{p} {v:,.0f}" for p, v in env["matmul_peak_gflops"].items()))
        print(f"host memory: {env['malloc']}")
        print(f"sizes: {env['model_sizes']}  batch_tokens: {env['batch_tokens']}  "
              f"steps: {env['warmup_steps']} warm-up + {env['train_steps']} timed")
        print(f"decoding: {env['decode_sentences']} test sentences longest first, {DECODE_BATCH} per batch, mean "
              f"{env['mean_source_length']:.1f} source words, mean length cap {env['mean_length_cap']:.1f}; "
              "lm-*: sampling in the greedy column")
        print(f"memory: {env['memory']}; roofline: model FLOPs (models/flops.py) / the matmul peak of the precision")
        print(f"{'model':<16} {'precision':<10} {'params':>10} {'train tok/s':>11} {'MFLOP/tok':>9} {'GFLOP/s':>8} "
              f"{'roofline':>8} {'weights':>9} {'greedy/s':>8} {'tok/s':>7} {f'beam{BEAM}/s':>8} {'tok/s':>7} "
              f"{'peak MiB':>8}")
        rows = []
        jobs = [(name, p, device_name, sizes, train, arguments) for name in arguments.models for p in precisions]
        for row in pool.imap(measure, jobs):
            row["roofline"] = row["gflops"] / env["matmul_peak_gflops"][row["precision"]]
            rows.append(row)
            print(f"{row['model']:<16} {row['precision']:<10} {row['parameters']:>10,} {row['train_tokens_per_s']:>11,.0f} "
                  f"{row['flops_per_token'] / 1e6:>9.1f} {row['gflops']:>8.1f} {row['roofline']:>8.1%} "
                  f"{row['weights']:>9} {row['greedy_sentences_per_s']:>8.1f} {row['greedy_tokens_per_s']:>7,.0f} "
                  f"{cell(row['beam_sentences_per_s'], '.1f'):>8} {cell(row['beam_tokens_per_s'], ',.0f'):>7} "
                  f"{row['peak_mib']:>8,.0f}", flush=True)
        if arguments.plain:
            plain = pool.apply(plain_throughput, ((device_name, sizes, train, arguments),))
            env["plain_rnnsearch_tokens_per_s"] = plain
            print(f"plain single-file PyTorch RNNsearch (fp32, benchmarks/plain_rnnsearch.py): {plain:,.0f} train tok/s")
    print(f"wall time: {time.perf_counter() - start:.0f} s  load average: {os.getloadavg()[0]:.1f}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
