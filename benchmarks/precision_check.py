"""Is bf16 mixed precision safe? Dev loss after the same steps in fp32 and bf16-mixed.

For each model (default: rnnsearch-gru and rnnenc-gru at params.yaml's sizes, on data/prepared),
trains from the same initial weights on the same batches for `--steps` optimizer steps with the
training stage's own LightningModule, DataModule and a Lightning Trainer (as pipeline.stages.train builds
them: `pipeline.training.build.build_task_and_data`), once with precision "32" and once with "bf16-mixed",
then measures the dev loss of each in fp32 (`Trainer.validate`). Prints both, their relative
difference, whether it is within the 2% tolerance, and the training time of each.

    .venv/bin/python benchmarks/precision_check.py
    .venv/bin/python benchmarks/precision_check.py --models rnnsearch-gru --steps 100
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "data/prepared"
TOLERANCE = 0.02


def dev_loss_after(model: str, precision: str, steps: int) -> tuple[float, float]:
    """(fp32 dev loss after ``steps`` steps trained in ``precision``, training seconds)."""
    import pytorch_lightning as pl
    import torch

    from pipeline.config import load_params
    from pipeline.training.build import build_task_and_data

    params = load_params(REPO / "params.yaml")
    pl.seed_everything(params.train.seed, workers=True, verbose=False)
    torch.set_flush_denormal(True)
    task, datamodule = build_task_and_data(model, DATA, params)
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=steps, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False, num_sanity_val_steps=0)
    started = time.perf_counter()
    trainer.fit(task, datamodule)
    seconds = time.perf_counter() - started
    evaluator = pl.Trainer(accelerator="cpu", devices=1, precision="32", logger=False, enable_progress_bar=False,
                           enable_model_summary=False, use_distributed_sampler=False)
    (result,) = evaluator.validate(task, datamodule, verbose=False)
    return float(result["dev_loss"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["rnnsearch-gru", "rnnenc-gru"])
    parser.add_argument("--steps", type=int, default=300)
    arguments = parser.parse_args()
    if not (DATA / "train").is_dir():
        raise SystemExit(f"{DATA} is missing: run `python -m pipeline.stages.prepare` first")
    print(f"{arguments.steps} steps per run; load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':<16} {'fp32 dev loss':>13} {'bf16 dev loss':>13} {'rel. diff':>9} {'within 2%':>9} "
          f"{'fp32 s':>7} {'bf16 s':>7}")
    for model in arguments.models:
        fp32, fp32_seconds = dev_loss_after(model, "32", arguments.steps)
        bf16, bf16_seconds = dev_loss_after(model, "bf16-mixed", arguments.steps)
        difference = abs(bf16 - fp32) / fp32
        print(f"{model:<16} {fp32:>13.4f} {bf16:>13.4f} {difference:>9.2%} {'yes' if difference <= TOLERANCE else 'NO':>9} "
              f"{fp32_seconds:>7.0f} {bf16_seconds:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
