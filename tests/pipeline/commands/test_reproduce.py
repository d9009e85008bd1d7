"""`make repro` / `make ablations` (pipeline/commands/reproduce.py): which stages it trains side by side,
read from the repository's own pipelines through DVC; its bad input. The side-by-side run itself is
exercised end to end by tests/pipeline/stages/test_full_pipeline.py."""
import json
import os
import subprocess
import sys

import pytest

from pipeline.commands.reproduce import last_minutes, log_path, plan
from pipeline.config import load_params
from tests.pipeline.helpers import REPO, assert_one_line_error


@pytest.fixture
def in_repository(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_params()


def test_make_repro_trains_every_model_after_its_inputs_the_longest_first(in_repository):
    params = in_repository
    inputs, trainings = plan("dvc.yaml")
    expected = {f"train@{m}" for m in params.experiments.models} | {
        f"train_synthetic@{m}" for m in params.experiments.synthetic_models}
    assert set(trainings) == expected
    assert {"prepare", "prepare_synthetic", *[f"tune@{m}" for m in params.experiments.models]} == set(inputs)
    # The committed reports say how long each took: the longest is scheduled first.
    minutes = [json.loads((REPO / "reports/train" / ("synthetic" if "synthetic" in s else "bible") /
                           f"{s.split('@')[1]}.json").read_text())["minutes_total"] for s in trainings]
    assert minutes == sorted(minutes, reverse=True)


def test_make_ablations_trains_the_variants_and_the_headline_pair_it_compares_with(in_repository):
    params = in_repository
    inputs, trainings = plan("ablations/dvc.yaml")
    assert set(trainings) == {"train_synthetic@rnnenc-gru", "train_synthetic@rnnsearch-gru"} | {
        f"ablations/dvc.yaml:train_ablation@{name}" for name in params.ablations.variants}
    assert set(inputs) == {"prepare_synthetic", "ablations/dvc.yaml:prepare_reordered"}
    assert str(log_path("ablations/dvc.yaml", "ablations/dvc.yaml:train_ablation@rnnenc-gru-c64")) == \
        os.path.join("logs", "ablations", "train_ablation-rnnenc-gru-c64.log")


def test_a_training_never_run_goes_first(in_repository, tmp_path):
    class Out:
        metric = True

        def __init__(self, path):
            self.def_path = path

    class Stage:
        outs = [Out(tmp_path / "missing.json")]

    assert last_minutes(Stage()) == float("inf")
    (tmp_path / "missing.json").write_text('{"minutes_total": 3.5}')
    assert last_minutes(Stage()) == 3.5


@pytest.mark.parametrize("arguments, needles", [
    (["docs/README.md"], ["docs/README.md", "no DVC stages"]),
    (["--jobs", "0"], ["--jobs 0", "at least 1"]),
])
def test_bad_input_is_one_line(arguments, needles):
    result = subprocess.run([sys.executable, "-m", "pipeline.commands.reproduce", *arguments], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert_one_line_error(result, *needles)
