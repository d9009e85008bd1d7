"""The tiny pipeline submitted to a real single-node SLURM (`make slurm`): one allocation, `dvc repro`
in the job's workspace, training ranks started by srun (2 per node: DDP over gloo), results pushed to
a bare git repository and a local DVC remote; `make results` brings them into the submitting
checkout; `make ui` serves the job's MLflow runs; a resubmission reruns nothing."""
import json
import time

import pytest

from tests.pipeline.cluster.projects import make_project, runs_served_by_make_ui
from tests.pipeline.stages.test_full_pipeline import MODELS, SYNTHETIC_MODELS

DDP = {"train": {"devices": 2, "precision": "32"}}


@pytest.fixture(scope="module")
def round_trip(slurm, tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("slurm-pipeline"), DDP, environment=slurm.environment())
    job, started = project.submit()
    state = slurm.wait(job, timeout=900)
    seconds = time.monotonic() - started
    print(f"SLURM job of the tiny pipeline: {seconds:.0f} s")
    assert state == "COMPLETED", project.log(job)[-5000:]
    started = time.monotonic()
    brought = project.command("results", f"slurm-{job}")
    print(f"make results: {time.monotonic() - started:.0f} s")
    assert brought.returncode == 0, brought.stdout + brought.stderr
    try:
        yield project, job
    finally:
        slurm.cancel_all()


def test_the_pipeline_ran_in_one_allocation_with_srun_ranks(round_trip):
    project, job = round_trip
    log = project.log(job)
    for stage in ["prepare", "prepare_synthetic", "evaluate", "report", *(f"train@{m}" for m in MODELS),
                  *(f"train_synthetic@{m}" for m in SYNTHETIC_MODELS), "tune@lm-gru"]:
        assert f"Running stage '{stage}'" in log, stage
    assert log.count("training on 1 node(s) × 2 rank(s) with srun") == len(MODELS) + len(SYNTHETIC_MODELS)
    # Lightning read both ranks from srun's SLURM_PROCID (its SLURMEnvironment), DDP over gloo.
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert f"Pushed experiment slurm-{job}" in log


def test_make_results_brings_the_reports_and_dvc_lock_home(round_trip):
    project, job = round_trip
    metrics = json.loads((project.path / "reports/metrics.json").read_text())
    assert list(metrics) == MODELS + ["claim"]
    assert (project.path / "reports/README.md").read_text().count("RNNsearch-50")
    assert (project.path / "reports/synthetic/figures/bleu_by_length.png").stat().st_size > 10_000
    assert json.loads((project.path / "reports/train/bible/lm-gru.json").read_text())["epochs"] == 1
    assert (project.path / "checkpoints/bible/rnnsearch-gru/best.ckpt").is_file()
    assert "dvc.lock" in project.run("git", "status", "--short").stdout
    assert json.loads(project.dvc("status", "dvc.yaml", "--json").stdout) == {}  # make repro's pipeline


def test_make_ui_serves_the_jobs_mlflow_runs(round_trip, tmp_path):
    """The job logged to the store `make ui` serves (the checkout's, passed to the job): its runs are there."""
    project, _ = round_trip
    roles = runs_served_by_make_ui(project.path, project.environment, tmp_path / "ui.log")
    assert len(roles["pipeline"]) == 1 and roles["pipeline"][0]["info"]["status"] == "FINISHED"
    assert len(roles["model"]) == len(MODELS) + len(SYNTHETIC_MODELS)


def test_a_resubmission_after_the_results_came_home_reruns_nothing(round_trip, slurm):
    project, _ = round_trip
    project.commit("results of the first job")
    project.run("git", "push", "-q", "origin", "HEAD:refs/heads/main")
    job, started = project.submit()
    assert slurm.wait(job, timeout=600) == "COMPLETED", project.log(job)[-5000:]
    print(f"resubmission: {time.monotonic() - started:.0f} s")
    log = project.log(job)
    assert "Running stage" not in log, log[-5000:]
    assert "didn't change, skipping" in log
