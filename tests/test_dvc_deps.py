"""dvc.yaml's code deps cannot drift from the imports: every project file a stage's command imports
(directly or not, lazily or not) lies under one of the stage's deps, and every code dep listed is
imported. Otherwise a change to that file would not rerun the stage, or a change elsewhere would."""
import re

import pytest
import yaml

from tests.imports import REPO, has_code, project_imports

CODE_ROOTS = ("pipeline", "models")


PIPELINES = ("dvc.yaml", "ablations/dvc.yaml")  # `make repro`'s and `make ablations`'


def stages() -> dict[str, tuple[str, list[str]]]:
    """Stage name → (the module its cmd runs, its deps), one entry per `foreach` template."""
    found = {}
    for pipeline in PIPELINES:
        for name, stage in yaml.safe_load((REPO / pipeline).read_text())["stages"].items():
            stage = stage.get("do", stage)
            module = re.match(r"python -m ([\w.]+)", stage["cmd"])
            assert module, f"{pipeline}: {name}: cmd {stage['cmd']!r} does not run `python -m <module>`"
            assert name not in found, f"{pipeline}: stage {name} is defined twice"
            found[name] = (module.group(1), stage["deps"])
    return found


def code_deps(deps: list[str]) -> list[str]:
    return [dep for dep in deps if dep.split("/")[0] in CODE_ROOTS]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


STAGES = stages()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_project_file_is_a_dep(stage):
    module, deps = STAGES[stage]
    imported = sorted(str(path.relative_to(REPO)) for path in project_imports(module) if has_code(path))
    assert imported, f"{stage}: {module} imports no project file; is the module name right?"
    missing = [path for path in imported if not covered(path, code_deps(deps))]
    assert not missing, f"dvc.yaml: stage {stage} imports {missing} but its deps do not cover them"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_code_dep_is_imported(stage):
    module, deps = STAGES[stage]
    imported = [str(path.relative_to(REPO)) for path in project_imports(module)]
    stale = [dep for dep in code_deps(deps) if not any(covered(path, [dep]) for path in imported)]
    assert not stale, f"dvc.yaml: stage {stage} lists {stale} as deps but imports nothing there"


def test_the_check_sees_a_lazy_import(tmp_path):
    """The train stage imports Lightning code inside functions: those files count."""
    files = {str(path.relative_to(REPO)) for path in project_imports("pipeline.stages.train")}
    assert "pipeline/training/callbacks.py" in files and "models/rnnsearch.py" in files
    assert not covered("pipeline/training/callbacks.py", ["pipeline/train", "pipeline/training.py"])
