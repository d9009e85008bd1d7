"""What bf16 would buy the recurrences: one time step's matmuls at the controlled experiment's sizes,
fp32 against bf16, on this CPU, beside the machine's large-matmul peak in the same run.

    .venv/bin/python benchmarks/step_matmul.py                 # 1 and 2 threads, default sizes
    .venv/bin/python benchmarks/step_matmul.py --batch 48 --hidden 1000

A recurrence runs its state projection once per step: forward s_{i-1} W_hhᵀ (B, H) × (H, G), and
backward d s_{i-1} = d gates W_hh (B, G) × (G, H); the weight gradient is one matmul over all steps
(models/decoder_pass.py). Today every one of them is fp32 (models.cells.full_precision). A bf16 step
must cast the fp32 state to bf16 first (the state itself stays fp32): that cast is timed with it.
Prints µs per call and GFLOP/s; no result is asserted (benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput import matmul_peak  # noqa: E402


def best_seconds(fn, repeats: int, rounds: int = 5) -> float:
    """Best of ``rounds`` mean times over ``repeats`` calls: this machine's speed swings between
    minutes, and the best round is the one least disturbed."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def step_rows(batch: int, hidden: int, gates: int, steps: int):
    """(name, FLOPs, fp32 call, bf16 call including the state's cast) per matmul of one step."""
    state = torch.randn(batch, hidden)
    grad_gates = torch.randn(batch, gates)
    weight = torch.randn(gates, hidden) * 0.05
    bias = torch.zeros(gates)
    weight16, bias16 = weight.bfloat16(), bias.bfloat16()  # cast once per batch, not per step
    rows_states = torch.randn(steps * batch, hidden)
    rows_grads = torch.randn(steps * batch, gates)
    return [
        ("forward s W_hhᵀ + b", 2 * batch * hidden * gates,
         lambda: torch.addmm(bias, state, weight.t()),
         lambda: torch.addmm(bias16, state.bfloat16(), weight16.t()).float()),
        ("backward d_gates W_hh", 2 * batch * hidden * gates,
         lambda: grad_gates @ weight,
         lambda: (grad_gates.bfloat16() @ weight16).float()),
        (f"weight grad over {steps} steps", 2 * steps * batch * hidden * gates,
         lambda: rows_grads.t() @ rows_states,
         lambda: (rows_grads.bfloat16().t() @ rows_states.bfloat16()).float()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=66, help="sentences per batch (controlled task: ~66)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--gates", type=int, default=None, help="G (default: 3 × hidden, a GRU)")
    parser.add_argument("--steps", type=int, default=30, help="time steps (the weight-gradient matmul)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    arguments = parser.parse_args()
    gates = arguments.gates or 3 * arguments.hidden
    torch.manual_seed(0)
    print(f"B {arguments.batch}, H {arguments.hidden}, G {gates}, {arguments.steps} steps; "
          f"bf16 computed natively: {torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    for threads in arguments.threads:
        torch.set_num_threads(threads)
        fp32_peak, bf16_peak = (matmul_peak(("cpu", precision, threads)) for precision in ("32", "bf16-mixed"))
        print(f"\n{threads} thread(s): 2048² matmul peak {fp32_peak:.0f} GFLOP/s fp32, {bf16_peak:.0f} bf16")
        print(f"| matmul | fp32 µs | bf16 µs (with casts) | fp32 GFLOP/s | bf16 GFLOP/s | bf16 speed-up |")
        print("|---|---|---|---|---|---|")
        for name, flops, fp32, bf16 in step_rows(arguments.batch, arguments.hidden, gates, arguments.steps):
            repeats = max(5, int(2e8 // flops))
            t32, t16 = best_seconds(fp32, repeats), best_seconds(bf16, repeats)
            print(f"| {name} | {t32 * 1e6:.0f} | {t16 * 1e6:.0f} | {flops / t32 / 1e9:.0f} | "
                  f"{flops / t16 / 1e9:.0f} | {t32 / t16:.2f}× |")


if __name__ == "__main__":
    main()
