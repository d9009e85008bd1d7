"""What every cluster job needs from the submitting checkout, checked before anything is submitted.

A job runs one git commit of this checkout (`dvc repro` in a workspace of its own), saves what it
made as a DVC experiment (`dvc exp save`) and pushes it: its git ref (dvc.lock, params, metrics,
reports, figures: everything git tracks) to the git remote ``cluster.results.git_remote``, and its
DVC-cached outputs (prepared data, checkpoints) to the DVC remote. `make results EXP=<name>` (pipeline/commands/results.py) pulls and applies it here.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipeline.config import Params
from pipeline.errors import UserError

GIT_TIMEOUT_S = 60


def run(command: list[str], cwd: Path, timeout: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(f"{command[0]} is not installed here (needed to submit a job)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{shlex.join(command)}` did not answer in {timeout:g} s: is the remote reachable?") from None


def dvc_command() -> list[str]:
    return [sys.executable, "-m", "dvc"]


@dataclass(frozen=True)
class Submission:
    """A commit of this checkout and where its job sends its results."""

    checkout: Path
    commit: str
    git_url: str  # cluster.results.git_remote's URL
    dvc_remote: str  # its name
    dvc_url: str

    def job_commands(self, experiment: str, stages: list[str]) -> list[str]:
        """The job's shell lines once it is in its workspace: run, save as an experiment, send it home.
        `dvc repro`, not `dvc exp run`: the latter first checks the workspace out as dvc.lock has it,
        which would delete the checkpoints a requeued or killed training stage resumes from. No stages
        named means `make repro`'s pipeline (dvc.yaml): `make ablations`' stages are not the job's."""
        stages = stages or ["dvc.yaml"]
        return ["mkdir -p .dvc/tmp && { [ -f .dvc/tmp/untracked-before ] || "
                "git ls-files --others --exclude-standard > .dvc/tmp/untracked-before; }",
                f"python -m dvc repro --pull {shlex.join(stages)}".rstrip(),
                "# Outputs git does not track yet (cache: false metrics, reports) belong to the experiment too.",
                "untracked=(); while IFS= read -r path; do untracked+=(--include-untracked \"$path\"); done < "
                "<(git ls-files --others --exclude-standard | grep -vxF -f .dvc/tmp/untracked-before)",
                # The stages named (dvc.yaml's when none): the others' outputs may be absent from the workspace.
                f'python -m dvc exp save --name {experiment} "${{untracked[@]}}" {shlex.join(stages)}'.rstrip(),
                f"python -m dvc exp push --remote {shlex.quote(self.dvc_remote)} {shlex.quote(self.git_url)} {experiment}",
                f'echo "results of {experiment} pushed; in your checkout: make results EXP={experiment}"']


def require_pushed(submission: Submission, params: Params) -> None:
    """A Ray job fetches its commit from the git remote: it must be there."""
    name = params.cluster.results.git_remote
    run(["git", "fetch", "--quiet", name], submission.checkout)
    holding = run(["git", "branch", "--remotes", "--contains", submission.commit], submission.checkout).stdout.split()
    if not any(branch.startswith(f"{name}/") for branch in holding):
        raise UserError(f"commit {submission.commit[:8]} is not on git remote {name!r}: git push {name} HEAD "
                        "first (the job fetches it from there)")


def first_line(text: str) -> str:
    """The line of a tool's output that says what went wrong (its last, skipping help links)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("<http")]
    return lines[-1] if lines else "no message"


def prepare_submission(checkout: Path, params: Params) -> Submission:
    """The commit to run and the remotes to push to; a UserError naming what to fix otherwise."""
    if run(["git", "rev-parse", "--git-dir"], checkout).returncode != 0:
        raise UserError(f"{checkout}: not a git checkout; a cluster job runs a commit (git init, commit, then submit)")
    commit = run(["git", "rev-parse", "HEAD"], checkout).stdout.strip()
    if not commit:
        raise UserError(f"{checkout}: no commit yet; commit the project, then submit")
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], checkout).stdout.split("\n")
    changed = [line[3:] for line in changed if line.strip()]
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise UserError(f"uncommitted changes to {shown}: commit them first (a job runs commit {commit[:8]}, "
                        "and its results come back as an experiment on top of it)")
    name = params.cluster.results.git_remote
    got = run(["git", "remote", "get-url", name], checkout)
    if got.returncode != 0:
        raise UserError(f"params.yaml: cluster.results.git_remote {name!r} is not a git remote of this checkout; "
                        f"add one the job can push to: git remote add {name} <url> (a bare repository on shared "
                        "storage will do)")
    git_url = got.stdout.strip()
    if run(["git", "ls-remote", "--heads", git_url], checkout).returncode != 0:
        raise UserError(f"git remote {name!r} ({git_url}) cannot be reached: "
                        f"{first_line(run(['git', 'ls-remote', git_url], checkout).stderr)}; fix it with "
                        f"git remote set-url {name} <url>")
    dvc_remote, dvc_url = remote(checkout, params.cluster.results.dvc_remote)
    return Submission(checkout, commit, git_url, dvc_remote, dvc_url)


def remote(checkout: Path, name: Optional[str]) -> tuple[str, str]:
    """The DVC remote a job pushes to (cluster.results.dvc_remote, else DVC's default) and its URL."""
    if name is None:
        got = run([*dvc_command(), "remote", "default"], checkout)
        name = got.stdout.strip() if got.returncode == 0 else ""
        if not name or " " in name:  # "No default remote set"
            raise UserError("no DVC remote to send the job's outputs to: add one every node and this checkout "
                            "reach, e.g. dvc remote add -d storage /shared/dvc-store (or set "
                            "cluster.results.dvc_remote)")
    got = run([*dvc_command(), "config", f"remote.{name}.url"], checkout)  # (`remote list` wraps long lines)
    if got.returncode != 0 or not got.stdout.strip():
        raise UserError(f"params.yaml: cluster.results.dvc_remote {name!r} is not a DVC remote here "
                        f"(dvc remote list); add it with dvc remote add {name} <url>")
    url = got.stdout.strip()
    folder = Path(url) if Path(url).is_absolute() else checkout / ".dvc" / url  # DVC resolves it from .dvc/
    if "://" not in url and not folder.is_dir():  # a path: shared storage that must exist
        raise UserError(f"DVC remote {name!r} ({url}) cannot be reached: no such folder here; create it on the "
                        f"shared storage or fix it with dvc remote modify {name} url <url>")
    return name, url if "://" in url else str(folder.resolve())
