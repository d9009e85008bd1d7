"""`pipeline.commands.submit` against a real Ray head that the test starts with `ray start --head` on 127.0.0.1,
with Ray's token auth on (as on a real cluster), and stops at the end."""
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.helpers import assert_one_line_error, copy_project, sentence_pairs, write_parallel
from tests.pipeline.helpers import deep_update
from tests.pipeline.stages.test_full_pipeline import TINY

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("submit"))
    write_parallel(project, sentence_pairs(400))  # the tiny corpus of the full-pipeline test, uploaded with the job
    params = yaml.safe_load((project / "params.yaml").read_text())
    deep_update(params, TINY)
    params["synthetic"]["synthetic"].update(pairs=300, vocab_size=40, max_words=30)
    params["synthetic"]["split"] = {"test_size": 50, "dev_size": 30}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "tiny"],
                   cwd=project, check=True)
    token = secrets.token_hex(16)
    environment = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    dashboard = free_port()
    started = subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
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
