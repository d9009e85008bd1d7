"""MLflow holds one parent run per pipeline execution and a child run per model, read back through
MlflowClient and through a real `mlflow server` on 127.0.0.1 over its REST API."""
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.pipeline.helpers import free_port, run_stage
from tests.pipeline.training.fitting import TINY_MODEL
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import TINY_RUN, write_project_params

TINY = {
    "model": TINY_MODEL.model_dump(),
    "train": {"batch_tokens": 128, "lr": 0.01, "max_epochs": 2, "dev_bleu_sentences": 16, "accelerator": "cpu"},
    "experiments": {"models": ["rnnsearch-gru", "lm-gru"], "synthetic_models": []},
    "mlflow": {"experiment": "bottleneck-test"},
}


@pytest.fixture(scope="module")
def tracked_project(tmp_path_factory):
    project = tmp_path_factory.mktemp("tracked")
    write_tiny_corpus(project / "data/prepared")
    write_project_params(project, TINY_RUN, TINY)
    for model in TINY["experiments"]["models"]:
        result = run_stage(project, "train", model)
        assert result.returncode == 0, result.stderr[-2000:]
    return project



def test_parent_and_child_runs_through_the_client(tracked_project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bottleneck-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("bottleneck.role") == "pipeline"]
    children = [r for r in runs if r.data.tags.get("bottleneck.role") == "model"]
    assert len(parents) == 1 and len(children) == 2 and len(runs) == 3  # no duplicate or orphan run
    parent_id = parents[0].info.run_id
    for child in children:
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == parent_id
        assert tags["model"] in TINY["experiments"]["models"] and tags["cell"] == "gru"
        assert tags["mlflow.source.git.commit"] and tags["corpus"] == "bible"
        history = client.get_metric_history(child.info.run_id, "dev_loss")
        assert len(history) == 2  # one point per epoch
        assert child.data.params["model_name"] == tags["model"]
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id, "train")]
        assert "train/best.ckpt" in artifacts
    search = next(c for c in children if c.data.tags["model"] == "rnnsearch-gru")
    assert "dev_bleu" in search.data.metrics


def test_runs_through_a_real_mlflow_server(tracked_project):
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tracked_project / 'mlflow.db'}", "--workers", "1"],
                              cwd=tracked_project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)

        def post(path, body):
            request = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)

        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name="
                                    "bottleneck-test", timeout=10) as response:
            experiment_id = json.load(response)["experiment"]["experiment_id"]
        runs = post("/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id],
                                                     "filter": "tags.`bottleneck.role` = 'model'"})["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == ["bible/lm-gru", "bible/rnnsearch-gru"]
        for run in runs:
            metrics = {m["key"] for m in run["data"]["metrics"]}
            assert {"dev_loss", "dev_ppl", "train_loss_epoch"} <= metrics
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_two_stages_creating_a_new_store_at_once(tmp_path):
    """Parallel runs (e.g. `dvc exp run --jobs 2`) both find or create the store and the experiment."""
    script = ("import sys; from pipeline.config import MlflowConfig; from pipeline.tracking.runs import Tracker; "
              f"print(Tracker(MlflowConfig(tracking_uri='sqlite:///{tmp_path / 'mlflow.db'}', experiment='bottleneck')).experiment_id)")
    from tests.pipeline.helpers import REPO
    environment = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    processes = [subprocess.Popen([sys.executable, "-c", script], env=environment, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-500:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]  # one experiment, not two
