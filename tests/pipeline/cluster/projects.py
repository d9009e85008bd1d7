"""A tiny project as a cluster user has it: a commit, a bare git repository as the git server, a
local folder as the DVC remote (both stand in for shared storage), and its own job workspaces."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.pipeline.helpers import copy_project, deep_update, sentence_pairs, write_parallel
from tests.pipeline.stages.test_full_pipeline import TINY

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
BIN = Path(sys.executable).parent


@dataclass
class Project:
    path: Path
    environment: dict

    def command(self, module: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"pipeline.commands.{module}", *args], cwd=self.path,
                              env=self.environment, capture_output=True, text=True, timeout=timeout)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(list(command), cwd=self.path, env=self.environment, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0 or not check, result.stdout + result.stderr
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "dvc"), *args, check=check)

    def commit(self, message: str) -> None:
        self.run(*GIT, "add", "-A")
        self.run(*GIT, "commit", "-qm", message)

    def submit(self, *args: str) -> tuple[str, float]:
        """`make slurm ARGS=…`: the job id, and when it was submitted."""
        started = time.monotonic()
        result = self.command("slurm", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.split("submitted SLURM job ", 1)[1].split(":")[0], started

    def log(self, job: str) -> str:
        path = self.path / "slurm-logs" / f"slurm-{job}.out"
        return path.read_text(errors="replace") if path.exists() else ""


def make_project(root: Path, *overrides: dict, environment: dict | None = None, remotes: bool = True) -> Project:
    project = copy_project(root / "checkout")
    write_parallel(project, sentence_pairs(400))
    params = yaml.safe_load((project / "params.yaml").read_text())
    deep_update(params, TINY)
    deep_update(params, {"cluster": {"slurm": {"workdir": str(root / "jobs"), "cpus_per_task": 1}}})
    for override in overrides:
        deep_update(params, override)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    base = environment if environment is not None else os.environ
    result = Project(project, dict(base, PATH=f"{BIN}{os.pathsep}{base['PATH']}"))
    result.commit("tiny")
    if remotes:
        subprocess.run(["git", "init", "-q", "--bare", str(root / "server.git")], check=True)
        (root / "dvc-store").mkdir()
        result.run("git", "remote", "add", "origin", str(root / "server.git"))
        result.run("git", "push", "-q", "origin", "HEAD:refs/heads/main")
        # --local, as the issue found users do: .dvc/config.local, which git does not carry to the job.
        result.dvc("remote", "add", "--local", "-d", "storage", str(root / "dvc-store"))
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runs_served_by_make_ui(checkout: Path, environment: dict, log: Path) -> dict[str, list[dict]]:
    """Starts `make ui` (pipeline.commands.ui) in ``checkout`` and reads, through the server it starts,
    the project experiment's runs by role (pipeline, model, sweep, trial)."""
    port = free_port()
    with log.open("w") as handle:
        server = subprocess.Popen([sys.executable, "-m", "pipeline.commands.ui", "--port", str(port)], cwd=checkout,
                                  env=dict(environment, PYTHONPATH=str(checkout)), stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        with urllib.request.urlopen(f"{api}/experiments/get-by-name?experiment_name=bottleneck", timeout=30) as answer:
            experiment = json.load(answer)["experiment"]["experiment_id"]
        request = urllib.request.Request(f"{api}/runs/search", method="POST", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"experiment_ids": [experiment], "max_results": 500}).encode())
        with urllib.request.urlopen(request, timeout=30) as answer:
            runs = json.load(answer).get("runs", [])
    finally:
        server.terminate()
        server.wait(timeout=30)
    roles: dict[str, list[dict]] = {}
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}
        roles.setdefault(tags.get("bottleneck.role"), []).append(run)
    return roles
