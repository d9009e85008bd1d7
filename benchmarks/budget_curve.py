"""BLEU by source length at several training budgets: how long must a model train to show the effect?

    .venv/bin/python benchmarks/budget_curve.py --corpus synthetic --model rnnenc-gru --epochs 4 12 24 48
    .venv/bin/python benchmarks/budget_curve.py --collect /tmp/curve --corpus synthetic --model rnnenc-gru

Trains ``model`` in a scratch folder beside the project's prepared data (params.yaml as it is, but no
time limit and ``max_epochs`` = each budget in turn: every step continues the previous checkpoint),
evaluates it on the test split after each budget, and keeps ``train_<epochs>.json`` and
``bbl_<epochs>.csv`` there. Then (or, with ``--collect``, from such a folder) it writes
``reports/budgets/<corpus>_<model>.csv`` (one row per budget and bucket: BLEU, its interval, brevity
penalty, n-gram precisions, dev perplexity, minutes) and ``.png`` (BLEU against source length, one
line per budget). Budgets are epochs, not minutes, so a busy machine changes only how long it takes;
the ``minutes`` column is the training time this run measured.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from pipeline.data.corpora import CORPORA  # noqa: E402


def run(folder: Path, corpus: str, model: str, epochs: list[int]) -> None:
    paths = CORPORA[corpus]
    (folder / paths.data).parent.mkdir(parents=True, exist_ok=True)
    if not (folder / paths.data).exists():
        (folder / paths.data).symlink_to(PROJECT / paths.data)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["experiments"][paths.models_key] = [model]
    params["train"]["time_limit_minutes"] = 10_000
    params["train"]["use_tuned"] = False
    environment = dict(os.environ, PYTHONPATH=str(PROJECT))
    for budget in epochs:
        params["train"]["max_epochs"] = budget
        params["train"]["epochs"] = {"bible": {}, "synthetic": {}}  # max_epochs is the budget of every model
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for stage in (["pipeline.stages.train", model, "--corpus", corpus], ["pipeline.stages.evaluate", "--corpus", corpus]):
            print(f"{budget} epochs: python -m {' '.join(stage)}", flush=True)
            subprocess.run([sys.executable, "-m", *stage], cwd=folder, env=environment, check=True,
                           stdout=subprocess.DEVNULL)
        reports = folder / paths.reports
        (folder / f"train_{budget}.json").write_text((folder / f"reports/train/{corpus}/{model}.json").read_text())
        (folder / f"bbl_{budget}.csv").write_text((reports / "bleu_by_length.csv").read_text())


def collect(folder: Path, corpus: str, model: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted(int(p.stem.split("_")[1]) for p in folder.glob("bbl_*.csv"))
    if not budgets:
        sys.exit(f"{folder}: no bbl_<epochs>.csv files")
    rows = []
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for budget in budgets:
        summary = json.loads((folder / f"train_{budget}.json").read_text())
        with (folder / f"bbl_{budget}.csv").open() as handle:
            buckets = [r for r in csv.DictReader(handle) if r["model"] == model and r.get("decoder", "beam") == "beam"]
        for row in buckets:
            rows.append({"epochs": budget, "minutes": summary["minutes_total"], "dev_ppl": summary.get("best_dev_ppl"),
                         **{k: row[k] for k in ("bucket", "n", "bleu", "ci_low", "ci_high", "bp", "p1", "p2", "p3", "p4")}})
        axis.errorbar([r["bucket"] for r in buckets], [float(r["bleu"]) for r in buckets],
                      yerr=[[float(r["bleu"]) - float(r["ci_low"]) for r in buckets],
                            [float(r["ci_high"]) - float(r["bleu"]) for r in buckets]],
                      marker="o", capsize=3, label=f"{budget} epochs (dev ppl {summary.get('best_dev_ppl', 0):.1f})")
    axis.set(xlabel="source sentence length (words)", ylabel="test BLEU",
             title=f"{corpus}: {model} at several training budgets")
    axis.legend()
    axis.grid(alpha=0.3)
    target = PROJECT / "reports/budgets"
    target.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(target / f"{corpus}_{model}.png", dpi=120)
    with (target / f"{corpus}_{model}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for budget in budgets:
        by_bucket = {r["bucket"]: float(r["bleu"]) for r in rows if r["epochs"] == budget}
        ratio = by_bucket["40-49"] / by_bucket["10-19"] if by_bucket.get("10-19") else float("nan")
        print(f"{budget:>3} epochs: 10-19 {by_bucket['10-19']:6.2f}  40-49 {by_bucket['40-49']:6.2f}  "
              f"40-49 / 10-19 = {ratio:.2f}")
    return target / f"{corpus}_{model}.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="synthetic")
    parser.add_argument("--model", default="rnnenc-gru")
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 12, 24, 48])
    parser.add_argument("--collect", type=Path, help="only summarise a folder of an earlier run")
    arguments = parser.parse_args()
    if arguments.collect:
        print(f"wrote {collect(arguments.collect, arguments.corpus, arguments.model)}")
        return
    with tempfile.TemporaryDirectory(prefix="budget-curve-") as scratch:
        run(Path(scratch), arguments.corpus, arguments.model, sorted(arguments.epochs))
        print(f"wrote {collect(Path(scratch), arguments.corpus, arguments.model)}")


if __name__ == "__main__":
    main()
