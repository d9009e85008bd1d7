"""Helpers for stage tests: run a stage as a user does, write params and small corpora."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on now (a server the test starts takes it next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_stage(project: Path, stage: str, *args: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.stages.{stage}", *args], cwd=project, env=environment,
        capture_output=True, text=True, timeout=600,
    )


# What tiny test runs fix whatever params.yaml says: no sweep result to use, the budget is
# train.max_epochs (not the per-family epochs of the real corpus), a constant learning rate until
# the dev loss stalls, and no synthetic-only overrides.
TINY_RUN = {
    "train": {"use_tuned": False, "schedule": "plateau",
              "epochs": {corpus: {"lm": None, "rnnenc": None, "rnnsearch": None} for corpus in ("bible", "synthetic")}},
    "experiments": {"synthetic_overrides": {}},
}


def deep_update(base: dict, override: dict) -> dict:
    """``override`` laid over ``base`` in place, key by key into nested dicts, except an empty dict,
    which replaces (``synthetic_overrides: {}`` means none)."""
    for key, value in override.items():
        if isinstance(value, dict) and value and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def params_with(*overrides: dict) -> dict:
    """The repository's params.yaml with each of ``overrides`` laid over it in turn: params.yaml
    holds every setting, so a test states only what it changes."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for override in overrides:
        deep_update(params, override)
    return params


def write_project_params(project: Path, *overrides: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(params_with(*overrides), sort_keys=False))


def write_params(project: Path, **prepare) -> None:
    """params.yaml with the given `prepare` keys (nested dicts allowed) over the repository's."""
    write_project_params(project, {"prepare": prepare})


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str, exit_code: int | None = None) -> str:
    assert result.returncode != 0, result.stdout
    if exit_code is not None:
        assert result.returncode == exit_code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "pairs/s" not in line
             and "%|" not in line]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_no_output(project: Path) -> None:
    data = project / "data"
    leftovers = sorted(str(p.relative_to(project)) for p in data.rglob("*")) if data.exists() else []
    assert leftovers == [], leftovers




WORDS = [f"w{i}" for i in range(300)]


def sentence_pairs(n: int, seed: int = 0, max_words: int = 70) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        length = 1 + (i * 7919) % max_words  # spread over every length, not random
        words = [rng.choice(WORDS) for _ in range(length)]
        src = " ".join(words) + f" s{i} ."
        tgt = " ".join(word.upper() for word in words) + f" T{i} ."
        pairs.append((src, tgt))
    return pairs


def write_parallel(directory: Path, pairs: list[tuple[str, str]]) -> tuple[Path, Path]:
    src, tgt = directory / "corpus.en", directory / "corpus.fr"
    src.write_text("".join(p[0] + "\n" for p in pairs), encoding="utf-8")
    tgt.write_text("".join(p[1] + "\n" for p in pairs), encoding="utf-8")
    return src, tgt


def tracked_and_untracked_files():
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split("\n")
    return [name for name in listing if name and (REPO / name).is_file()]


def copy_project(target: Path) -> Path:
    """The working tree's tracked and untracked (not ignored) files, committed in a new git repo."""
    for name in tracked_and_untracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=target, check=True)
    return target


def dvc(clone: Path, *args: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=clone, env=environment,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result
