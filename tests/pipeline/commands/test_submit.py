"""`pipeline.commands.submit` against a real Ray head that the test starts with `ray start --head` on
127.0.0.1, with Ray's token auth on (as on a real cluster), and stops at the end; a bare git
repository and a local DVC remote stand in for the git server and shared storage."""
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.pipeline.helpers import assert_one_line_error, copy_project, sentence_pairs, write_parallel
from tests.pipeline.helpers import deep_update, dvc, free_port
from tests.pipeline.cluster.projects import runs_served_by_make_ui
from tests.pipeline.stages.test_full_pipeline import TINY

RAY = str(Path(sys.executable).parent / "ray")



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("submit") / "checkout")
    write_parallel(project, sentence_pairs(400))  # the tiny corpus of the full-pipeline test, uploaded with the job
    params = yaml.safe_load((project / "params.yaml").read_text())
    deep_update(params, TINY)
    params["synthetic"]["synthetic"].update(pairs=300, vocab_size=40, max_words=30)
    params["synthetic"]["split"] = {"test_size": 50, "dev_size": 30}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "tiny"],
                   cwd=project, check=True)
    # The git server and the DVC remote a job pushes its results to (shared storage stands in for both).
    server, store = project.parent / "server.git", project.parent / "dvc-store"
    subprocess.run(["git", "init", "-q", "--bare", str(server)], check=True)
    store.mkdir()
    subprocess.run(["git", "remote", "add", "origin", str(server)], cwd=project, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=project, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "remote", "add", "--local", "-d", "storage", str(store)],
                   cwd=project, check=True, capture_output=True)
    token = secrets.token_hex(16)
    environment = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    dashboard, head = free_port(), free_port()
    started = subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(head),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2",
         "--disable-usage-stats"], env=environment, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield project, f"http://127.0.0.1:{dashboard}", environment
    finally:
        subprocess.run([RAY, "stop", "--force"], env=environment, capture_output=True, timeout=120)


def submit(project, environment, *args):
    return subprocess.run([sys.executable, "-m", "pipeline.commands.submit", *args], cwd=project, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_a_submitted_stage_runs_as_a_ray_job(cluster):
    project, address, environment = cluster
    result = submit(project, environment, "--address", address, "--stage", "prepare_synthetic", "--wait")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job_id = result.stdout.split("submitted ", 1)[1].split()[0]
    assert job_id.startswith("raysubmit_")
    assert f"ray job logs --address {address} --follow {job_id}" in result.stdout
    # The job's own output, streamed back: DVC ran the stage in the uploaded working directory.
    assert "Running stage 'prepare_synthetic'" in result.stdout
    assert "prepared data/synthetic: pairs {'train': 200, 'dev': 40, 'test': 60}" in result.stdout
    assert f"job {job_id} SUCCEEDED" in result.stderr
    status = subprocess.run([RAY, "job", "status", "--address", address, job_id], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert "succeeded" in (status.stdout + status.stderr).lower()
    # The upload left this checkout alone.
    assert not (project / "data/synthetic/train").exists()


def test_a_sweep_runs_on_the_cluster_inside_a_job(cluster):
    """tune@lm-gru as a job: DVC prepares the uploaded corpus, the stage joins the job's cluster
    (not a Ray instance of its own) and its trials train on it."""
    project, address, environment = cluster
    result = submit(project, environment, "--address", address, "--stage", "tune@lm-gru", "--wait")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage 'prepare'" in result.stdout and "Running stage 'tune@lm-gru'" in result.stdout
    assert "sweeping lm-gru on Ray (the cluster of this Ray job" in result.stdout
    assert "sweep of lm-gru: 2 trials, 0 failed" in result.stdout and "best: trial" in result.stdout


def test_a_failing_job_exits_non_zero_when_waiting(cluster):
    project, address, environment = cluster
    result = submit(project, environment, "--address", address, "--stage", "no_such_stage", "--wait")
    assert_one_line_error(result, "job raysubmit_", "FAILED")
    assert "no_such_stage" in result.stdout  # DVC's own complaint, from the job's log


def test_a_wrong_token_is_a_one_line_error(cluster):
    project, address, environment = cluster
    result = submit(project, dict(environment, RAY_AUTH_TOKEN="not-the-token"), "--address", address)
    assert_one_line_error(result, address, "refused our Ray auth token", "RAY_AUTH_TOKEN")


def test_a_jobs_results_come_home_and_a_resubmission_reruns_nothing(cluster, tmp_path):
    """The job pushes its experiment to the git server and the DVC remote; `make results` pulls and
    applies it here (dvc status clean for what it ran); its MLflow runs, logged to the shared store the
    job was given, are what `make ui` serves; after a commit, a new job pulls instead of retraining."""
    project, address, environment = cluster
    environment = dict(environment, MLFLOW_TRACKING_URI=f"sqlite:///{project.parent / 'shared-mlflow.db'}")
    stage = "train_synthetic@rnnenc-gru"
    started = time.monotonic()
    result = submit(project, environment, "--address", address, "--stage", stage, "--wait")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"Ray job: {time.monotonic() - started:.0f} s")
    experiment = result.stdout.split("make results EXP=", 1)[1].split()[0]
    assert experiment.startswith("ray-") and f"Pushed experiment {experiment}" in result.stdout
    brought = subprocess.run([sys.executable, "-m", "pipeline.commands.results", experiment], cwd=project,
                             env=environment, capture_output=True, text=True, timeout=600)
    assert brought.returncode == 0, brought.stdout + brought.stderr
    summary = json.loads((project / "reports/train/synthetic/rnnenc-gru.json").read_text())
    assert summary["epochs"] == 1 and (project / "checkpoints/synthetic/rnnenc-gru/best.ckpt").is_file()
    assert (project / "data/synthetic/stats.json").is_file()
    status = dvc(project, "status", "--with-deps", "--json", stage)
    assert json.loads(status.stdout) == {}
    roles = runs_served_by_make_ui(project, environment, tmp_path / "ui.log")
    assert [run["data"]["tags"] for run in roles["model"]]

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "results"],
                   cwd=project, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=project, check=True)
    again = submit(project, environment, "--address", address, "--stage", stage, "--wait")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    ran = [line for line in again.stdout.splitlines() if "Running stage" in line or "Pulling data" in line]
    assert not [line for line in ran if "Running stage" in line], again.stdout[-4000:]
    assert f"Pulling data for stage: '{stage}'" in ran


def test_an_unpushed_commit_is_a_one_line_error(cluster):
    project, address, environment = cluster
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--allow-empty",
                    "-m", "not pushed"], cwd=project, check=True)
    result = submit(project, environment, "--address", address)
    assert_one_line_error(result, "is not on git remote 'origin'", "git push origin HEAD")
