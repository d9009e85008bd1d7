"""benchmarks/gpu_check.py runs where only torch, Lightning, sacrebleu and tokenizers exist (the lent
GPU machine): here on CPU, tiny sizes, with Ray, MLflow, DVC, pydantic and sacremoses made unimportable."""
import json
import os
import subprocess
import sys

from tests.pipeline.helpers import REPO
from tests.pipeline.training.tiny_corpus import write_tiny_corpus

ABSENT = ("ray", "mlflow", "dvc", "pydantic", "sacremoses")
BLOCKER = f'''
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU machine)")
        return None

sys.meta_path.insert(0, Absent())
'''


def test_gpu_check_needs_only_torch_lightning_sacrebleu_tokenizers(tmp_path):
    data = write_tiny_corpus(tmp_path / "tiny")
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text(BLOCKER)
    environment = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py"), str(data), "--steps", "4",
                             "--warmup", "1", "--test-sentences", "16", "--tiny", "--out", str(tmp_path / "out")],
                            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out/gpu_check.json").read_text())
    assert [m["model"] for m in report["models"]] == ["rnnenc-gru", "rnnsearch-gru"]
    for model in report["models"]:
        assert model["steps"] == 4 and model["tokens_per_s"] > 0 and model["peak_memory_mb"] > 0
        assert model["test"]["scored_on"] == "tokens" and model["test"]["sentences"] == 16  # no sacremoses here
        assert sum(row["n"] for row in model["test"]["buckets"].values()) == 16
    assert "rnnsearch-gru:" in result.stdout and "target tokens/s" in result.stdout
    assert report["recommended_max_steps"] >= 100 and report["recommended_max_steps"] % 100 == 0
    assert f"train.max_steps for a 60-minute `gpu` run: {report['recommended_max_steps']}" in result.stdout


def test_recommended_max_steps_fits_the_run():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    settings = {"experiments": {"models": ["lm-gru", "rnnenc-gru", "rnnsearch-gru", "rnnsearch-lstm"]}}
    models = [{"model": "rnnenc-gru", "seconds_per_step": 0.1}, {"model": "rnnsearch-gru", "seconds_per_step": 0.2}]
    steps = gpu_check.recommended_max_steps(models, settings)
    # 2 × 0.1 s + 2 × 0.2 s = 0.6 s per step of every model; 70% of 60 minutes = 2,520 s -> 4,200 steps
    assert steps == 4200
    assert gpu_check.recommended_max_steps(models[:1], settings) is None
