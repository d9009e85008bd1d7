"""The `tune` stage on a real local Ray instance (127.0.0.1): an ASHA sweep whose trials train through
Ray Train's Lightning integration, retries, the MLflow run tree, the tuned config reaching training,
and bad tune params stopped before any trial."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.pipeline.helpers import REPO, assert_one_line_error, free_port, run_stage
from tests.pipeline.training.fitting import TINY_MODEL
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import TINY_RUN, write_project_params

SPACE = {"train.lr": {"loguniform": [0.003, 0.03]}, "model.hidden_size": {"choice": [16, 32]}}
TUNE = {"models": ["lm-gru"], "num_samples": 3, "max_concurrent_trials": 2, "epochs": 2, "grace_period": 1,
        "batches_per_epoch": 8, "max_failures": 1, "search_space": {"lm": SPACE}}


def tiny_project(project, **tune):
    write_tiny_corpus(project / "data/prepared")
    params = {"model": TINY_MODEL.model_dump(),
              "train": {"batch_tokens": 128, "lr": 0.01, "max_epochs": 2, "dev_bleu_sentences": 16,
                        "accelerator": "cpu", "early_stopping_patience": 0, "use_tuned": True},
              "experiments": {"models": ["lm-gru", "lm-rnn"], "synthetic_models": []},
              "tune": {**TUNE, **tune}}
    write_project_params(project, TINY_RUN, params)
    return project


def run_tune(project, model="lm-gru", **environment):
    return subprocess.run([sys.executable, "-m", "pipeline.stages.tune", model], cwd=project, capture_output=True,
                          text=True, timeout=900, env=dict(os.environ, PYTHONPATH=str(REPO), **environment))


def mlflow_runs(project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bottleneck")
    return client, client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One 3-trial sweep in which every trial's first attempt crashes (and is retried)."""
    project = tiny_project(tmp_path_factory.mktemp("tune"))
    marker = project / "crashed"
    result = run_tune(project, BOTTLENECK_TEST_FAIL_TRIAL_ONCE=str(marker))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, result


def test_sweep_writes_the_best_config_and_every_trial(sweep):
    project, result = sweep
    summary = json.loads((project / "reports/tune/lm-gru.json").read_text())
    assert summary["swept"] and summary["metric"] == "dev_loss" and summary["mode"] == "min"
    trials = summary["trials"]
    assert len(trials) == 3 and summary["failed"] == 0
    for trial in trials:
        assert 0.003 <= trial["config"]["train.lr"] <= 0.03 and trial["config"]["model.hidden_size"] in (16, 32)
        assert trial["epochs"] in (1, 2) and trial["final"]["dev_loss"] > 0
    # ASHA (grace 1, reduction 2, max 2 epochs): at least one trial runs both epochs.
    assert any(t["status"] == "completed" and t["epochs"] == 2 for t in trials)
    assert summary["best"]["dev_loss"] == min(t["best"] for t in trials)
    assert summary["best"]["config"] in [t["config"] for t in trials]
    assert summary["trial_minutes"] > 0 and summary["wall_minutes"] > 0
    assert "Trial status" in result.stdout  # Tune's status table
    assert "best: trial" in result.stdout
    # tune.max_concurrent_trials (2) holds: Tune's status table never shows more trials running. (On
    # a fast machine the sweep can end before a table with running trials is printed: none is fine.)
    running = [int(n) for n in re.findall(r"Trial status: .*?(\d+) RUNNING", result.stdout)]
    assert max(running, default=0) <= 2, running
    assert "will be ignored" not in result.stdout + result.stderr


def test_a_trial_that_crashes_is_retried(sweep):
    project, result = sweep
    summary = json.loads((project / "reports/tune/lm-gru.json").read_text())
    crashed = sorted(p.name.split(".", 1)[1] for p in project.glob("crashed.*"))
    assert crashed == sorted(t["trial_id"] for t in summary["trials"])  # each first attempt crashed ...
    assert all(t["status"] != "error" for t in summary["trials"])  # ... and its retry finished
    assert "injected failure" in result.stdout + result.stderr


def test_one_sweep_run_with_a_nested_run_per_trial(sweep):
    project, _ = sweep
    client, runs = mlflow_runs(project)
    sweeps = [r for r in runs if r.data.tags.get("bottleneck.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("bottleneck.role") == "trial"]
    assert len(sweeps) == 1 and len(trials) == 3  # no duplicates from the crashed first attempts
    pipeline = [r for r in runs if r.data.tags.get("bottleneck.role") == "pipeline"]
    assert len(runs) == 1 + 1 + 3 and len(pipeline) == 1
    assert sweeps[0].data.tags["mlflow.parentRunId"] == pipeline[0].info.run_id
    assert "best_dev_loss" in sweeps[0].data.metrics and "best.train.lr" in sweeps[0].data.params
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == sweeps[0].info.run_id
        assert trial.info.status == "FINISHED"
        assert {"tune.train.lr", "tune.model.hidden_size"} <= set(trial.data.params)
        history = client.get_metric_history(trial.info.run_id, "dev_loss")  # one point per epoch
        assert 1 <= len(history) <= 2


def test_training_uses_the_tuned_config(sweep):
    project, _ = sweep
    best = json.loads((project / "reports/tune/lm-gru.json").read_text())["best"]["config"]
    result = run_stage(project, "train", "lm-gru")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((project / "reports/train/bible/lm-gru.json").read_text())
    assert summary["tuned"] == best
    checkpoint = __import__("torch").load(project / "checkpoints/bible/lm-gru/best.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["model"]["hidden_size"] == best["model.hidden_size"]
    assert checkpoint["hyper_parameters"]["train"]["lr"] == pytest.approx(best["train.lr"])


def test_a_model_not_in_tune_models_is_not_swept(sweep):
    project, _ = sweep
    result = run_tune(project, "lm-rnn")
    assert result.returncode == 0, result.stderr
    assert json.loads((project / "reports/tune/lm-rnn.json").read_text()) == {
        "model": "lm-rnn", "swept": False, "best": None}
    assert "Ray" not in result.stderr  # no Ray instance was started for it


def test_the_sweep_resumes_instead_of_starting_over(sweep):
    project, first = sweep
    before = json.loads((project / "reports/tune/lm-gru.json").read_text())
    result = run_tune(project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming the interrupted sweep" in result.stdout
    after = json.loads((project / "reports/tune/lm-gru.json").read_text())
    assert [t["trial_id"] for t in after["trials"]] == [t["trial_id"] for t in before["trials"]]
    assert after["best"] == before["best"]
    _, runs = mlflow_runs(project)
    assert sum(r.data.tags.get("bottleneck.role") == "trial" for r in runs) == 3


def test_an_interrupted_sweep_resumes_where_it_stopped(project):
    tiny_project(project, max_concurrent_trials=1)
    command = [sys.executable, "-m", "pipeline.stages.tune", "lm-gru"]
    # Output to files, not pipes nobody reads while it runs: a full pipe would block the sweep in a write.
    out, err = project / "tune.out", project / "tune.err"
    with out.open("w") as stdout, err.open("w") as stderr_file:
        process = subprocess.Popen(command, cwd=project, env=dict(os.environ, PYTHONPATH=str(REPO)),
                                   stdout=stdout, stderr=stderr_file)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        reports = [p for p in project.glob("ray_results/lm-gru-*/run_trial_*/result.json") if p.stat().st_size]
        if reports:  # the first trial has finished an epoch: interrupt the sweep as Ctrl-C would
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=300)
    stderr = err.read_text()
    assert process.returncode == 1, stderr[-3000:]
    assert "error: the sweep of lm-gru was interrupted (SIGINT); run the stage again" in stderr.strip().splitlines()[-1]
    assert not (project / "reports/tune/lm-gru.json").exists()  # no result from half a sweep
    interrupted = {"_".join(p.parent.name.split("_")[2:4])  # run_trial_<id>_<index>_<config>…
                   for p in project.glob("ray_results/lm-gru-*/run_trial_*/result.json")}
    assert interrupted

    result = run_tune(project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming the interrupted sweep" in result.stdout
    summary = json.loads((project / "reports/tune/lm-gru.json").read_text())
    assert len(summary["trials"]) == 3 and summary["failed"] == 0
    assert interrupted <= {t["trial_id"] for t in summary["trials"]}  # the same trials, resumed
    _, runs = mlflow_runs(project)
    assert sum(r.data.tags.get("bottleneck.role") == "sweep" for r in runs) == 1
    assert sum(r.data.tags.get("bottleneck.role") == "trial" for r in runs) == 3


def test_a_trial_can_itself_be_a_ddp_run_of_two_workers(project):
    tiny_project(project, num_samples=1, epochs=1, resources_per_trial={"workers": 2, "cpus_per_worker": 1})
    result = run_tune(project)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert ") from rank 0" in log and ") from rank 1" in log  # Ray Train: each DDP rank reported its epoch
    summary = json.loads((project / "reports/tune/lm-gru.json").read_text())
    assert summary["trials"][0]["status"] == "completed" and summary["best"]["dev_loss"] > 0


def test_trials_that_keep_crashing_are_listed_with_their_error(project):
    tiny_project(project, num_samples=1, max_failures=0)
    result = run_tune(project, BOTTLENECK_TEST_FAIL_TRIAL_ONCE=str(project / "crashed"))
    assert result.returncode == 1
    summary = json.loads((project / "reports/tune/lm-gru.json").read_text())
    assert summary["failed"] == 1 and summary["best"] is None
    assert "injected failure" in summary["trials"][0]["error"]
    assert "error" in result.stdout and "injected failure" in result.stdout  # the summary table
    assert result.stderr.strip().splitlines()[-1].startswith("error: reports/tune/lm-gru.json: every trial")


@pytest.mark.parametrize("tune, needle", [
    ({"search_space": {"lm": {}}}, "tune: search_space.lm: empty search space, but lm-gru is to be swept"),
    ({"num_samples": 0}, "tune.num_samples: Input should be greater than or equal to 1 (got 0)"),
    ({"search_space": {"lm": {"train.lr": {"loguniform": [0, 1]}}}}, "loguniform: low must be > 0"),
    ({"search_space": {"lm": {"train.devices": {"choice": [1, 2]}}}}, "lm.train.devices: not a tunable key"),
    ({"search_space": {"lm": {"model.dropout": {"uniform": [0.0, 1.5]}}}}, "1.5 is not a valid model.dropout"),
])
def test_bad_tune_params_are_one_line_errors(project, tune, needle):
    tiny_project(project, **tune)
    assert_one_line_error(run_tune(project), needle, exit_code=2)


def test_more_gpus_per_trial_than_the_cluster_has(project):
    tiny_project(project, resources_per_trial={"workers": 2, "gpus_per_worker": 1})
    result = run_tune(project)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: params.yaml: tune.resources_per_trial: a trial needs 2 GPUs (2 workers × 1) "
                     "but the Ray cluster has 0"]
    assert "Traceback" not in result.stderr and "Trial status" not in result.stdout
    assert not (project / "reports/tune/lm-gru.json").exists()


def test_a_stale_ray_start_address_on_the_machine_is_not_joined(project):
    """Without cluster.address or $RAY_ADDRESS the sweep starts its own Ray, even where an earlier
    `ray start` left its address in $RAY_TMPDIR/ray/ray_current_cluster (a node that is gone)."""
    tiny_project(project, resources_per_trial={"workers": 1, "gpus_per_worker": 1})
    ray_temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths live in it
    try:
        (ray_temp / "ray").mkdir()
        (ray_temp / "ray/ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
        result = run_tune(project, RAY_TMPDIR=str(ray_temp))
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    # The cluster it started is this machine's: no GPU, so the check before any trial stops it. (Ray
    # logs its start here: a fresh temp dir makes it generate, and announce, an auth token.)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Started a local Ray instance" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: params.yaml: tune.resources_per_trial: "
                                                            "a trial needs 1 GPUs")
