"""The layout docs/architecture.md describes, held by tests: stages are leaves, models/ is plain
PyTorch, no import circle, no module a reader cannot take in one sitting."""
import ast
import re

import pytest
import yaml

from tests.imports import REPO, cycles, import_graph, imported_names, project_modules

MAX_LINES = 300


def test_no_import_circle():
    graph = import_graph()
    assert cycles(graph) == []
    # The circle there was: the registry naming the tasks, whose base class builds models through it.
    graph["models.registry"].add("pipeline.training.tasks")
    assert [c for c in cycles(graph) if {"models.registry", "pipeline.training.sequence_task"} <= set(c)]


def test_models_are_plain_pytorch():
    """models/ holds nn.Modules and search: no Lightning, nothing of the pipeline."""
    for name, path in project_modules().items():
        if name.startswith("models"):
            imported = imported_names(path, name)
            assert not [m for m in imported if m.split(".")[0] in ("pytorch_lightning", "lightning", "pipeline")], name


def test_stages_and_commands_are_entry_points_nothing_imports():
    modules = project_modules()
    entry_points = [name for name in modules if re.match(r"pipeline\.(stages|commands)\.\w+$", name)]
    assert {name.rsplit(".", 1)[1] for name in entry_points} == {
        "prepare", "tune", "train", "evaluate", "probe", "report", "evaluate_ablations", "report_ablations", "ui",
        "submit", "slurm", "results", "reproduce"}
    for name in entry_points:
        source = modules[name].read_text(encoding="utf-8")
        assert "def main()" in source and 'if __name__ == "__main__":' in source, name
    importers = {module: sorted(set(entry_points) & targets) for module, targets in import_graph().items()}
    assert {module: found for module, found in importers.items() if found} == {}


@pytest.mark.parametrize("pipeline", ["dvc.yaml", "ablations/dvc.yaml"])
def test_every_dvc_stage_runs_a_module_of_pipeline_stages(pipeline):
    for name, stage in yaml.safe_load((REPO / pipeline).read_text())["stages"].items():
        command = stage.get("do", stage)["cmd"]
        module = re.match(r"python -m ([\w.]+)", command).group(1)
        assert module.startswith("pipeline.stages.") and (REPO / (module.replace(".", "/") + ".py")).is_file(), name


def test_no_module_is_longer_than_one_sitting():
    long = {name: count for name, path in project_modules().items()
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_module_says_what_it_holds():
    missing = [name for name, path in project_modules().items()
               if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None]
    assert missing == []
