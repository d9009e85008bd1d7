"""`dvc repro prepare` in a copy of the project: real DVC, the repository's dvc.yaml and params.yaml."""
import json
from pathlib import Path

import pytest
import yaml

from tests.pipeline.helpers import copy_project, dvc


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("clone"))


def out_hashes(clone: Path) -> dict:
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for out in lock["stages"]["prepare"]["outs"]}


def test_repro_builds_prepared_data_then_skips(clone):
    first = dvc(clone, "repro", "prepare")
    assert "Running stage 'prepare'" in first.stdout
    stats = json.loads((clone / "data/prepared/stats.json").read_text())
    assert stats["pairs"]["test"] > 1900
    for name in ("train/src.ids.npy", "test/ref-o.txt", "vocab/tgt.json", "lengths.csv", "corpus.json"):
        assert (clone / "data/prepared" / name).is_file(), name
    second = dvc(clone, "repro", "prepare")
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    metrics = json.loads(dvc(clone, "metrics", "show", "--json").stdout)
    assert metrics  # stats.json is a DVC metric
    assert "pairs" in json.dumps(metrics)


def test_outputs_are_deterministic_and_params_changes_rerun(clone):
    before = out_hashes(clone)
    too_long = json.loads((clone / "data/prepared/stats.json").read_text())["dropped"]["too_long"]
    dvc(clone, "repro", "--force", "prepare")
    assert out_hashes(clone) == before  # same seed, same bytes

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["prepare"]["clean"]["max_len"] = 30
    (clone / "params.yaml").write_text(yaml.safe_dump(params))
    diff = dvc(clone, "params", "diff", "--json").stdout
    assert "prepare.clean.max_len" in diff
    assert "Running stage 'prepare'" in dvc(clone, "repro", "prepare").stdout
    stats = json.loads((clone / "data/prepared/stats.json").read_text())
    assert stats["dropped"]["too_long"] > too_long
