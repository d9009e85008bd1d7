"""Every command the README and docs/ tell a user to type names something real: a make target of the
Makefile, a stage or command module, a script or file of the repository, a params.yaml key (`dvc exp
run -S key=…`), a DVC stage (`dvc repro <stage>`). A renamed target, stage or key fails here instead of
failing a newcomer. Commands live in ```bash blocks; other blocks (equations, trees) are not commands."""
from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.imports import REPO

DOCUMENTS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
             *[name for name in ("benchmarks/README.md", "data/corpus/README.md") if (REPO / name).exists()]]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)
# Programs a command may start with besides the project's own (checked below); anything else fails,
# so a new kind of command is looked at once.
PROGRAMS = {"make", "dvc", "python", "python3", "python3.11", ".venv/bin/python", ".venv/bin/dvc", "ray", "mlflow",
            "git", "cd", "source", "export", "apt-get", "sudo", "sbatch", "squeue", "scontrol", "scancel", "srun",
            "sinfo", "tail", "cat", "ssh", "pip", "kubectl", "tar", "ls", "nvidia-smi", ".venv/bin/ray",
            ".venv/bin/mlflow", "PYTHON=python3.11", "RAY_ADDRESS", "mkdir", "cp", "gzip"}
DVC_COMMANDS = {"repro", "status", "metrics", "params", "plots", "exp", "push", "pull", "fetch", "checkout", "remote",
                "dag", "commit", "gc", "init", "config", "queue", "add"}


def commands(document: str) -> list[str]:
    """The command lines of a document's shell blocks: comments and prompts stripped, continuations joined."""
    text = (REPO / document).read_text(encoding="utf-8")
    found = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("#") or not line:
                continue
            found.append(line)
    return found


CASES = [(document, line) for document in DOCUMENTS for line in commands(document)]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def params_keys() -> set[str]:
    def walk(tree, prefix=""):
        for key, value in tree.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
    return set(walk(yaml.safe_load((REPO / "params.yaml").read_text())))


def dvc_stages() -> set[str]:
    """Every stage name, `foreach` stages expanded (train@rnnsearch-gru) from params.yaml's lists."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = set()
    for pipeline in ("dvc.yaml", "ablations/dvc.yaml"):
        for name, stage in yaml.safe_load((REPO / pipeline).read_text())["stages"].items():
            names.add(name)
            if "foreach" in stage:
                items = params
                for key in stage["foreach"].strip("${}").split("."):
                    items = items[key]
                names |= {f"{name}@{item}" for item in items}
    return names


def words_of(line: str) -> list[str]:
    """The words of the first command of a line (before a comment, a pipe or `&&`)."""
    line = re.split(r"\s#\s|\s#$", line)[0]
    line = re.split(r"\s(?:\|\||&&|\||;)\s", line)[0]
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in a placeholder: split on spaces
        return line.split()


def check_path(word: str) -> None:
    """A repository path a command names must exist (placeholders <…>, globs and absolute paths aside)."""
    if "<" in word or "*" in word or "$" in word or word.startswith(("/", "~", "-", "http", "[")):
        return
    candidate = word.split("=", 1)[-1]
    if re.fullmatch(r"[\w./-]+/[\w.-]+\.(py|yaml|md|sh|tsv|txt|json|csv)", candidate):
        assert (REPO / candidate).exists(), f"{candidate}: no such file in the repository"


@pytest.mark.parametrize("document, line", CASES, ids=[f"{d}:{i}" for i, (d, _) in enumerate(CASES)])
def test_command_names_something_real(document, line):
    check(document, line)


@pytest.mark.parametrize("line", [
    "make reproduce", "dvc exp run -S train.learning_rate=0.01", "dvc repro train@nothing", "dvc fly",
    ".venv/bin/python -m pipeline.stages.nowhere", ".venv/bin/python benchmarks/nothing.py", "frobnicate --now",
])
def test_the_check_catches_what_does_not_exist(line):
    with pytest.raises(AssertionError):
        check("example.md", line)


def check(document: str, line: str) -> None:
    words = words_of(line)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]) and words[0] not in PROGRAMS:  # VAR=value command
        words = words[1:]
    if not words:
        return
    program = words[0]
    assert program in PROGRAMS or (REPO / program).exists(), f"{document}: `{line}`: unknown program {program!r}"
    for word in words[1:]:
        check_path(word)
    if program == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        for target in targets:
            assert target in make_targets(), f"{document}: `{line}`: no make target {target!r}"
    modules = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-m"]
    for module in modules:
        if module.startswith(("pipeline", "benchmarks")):
            assert (REPO / (module.replace(".", "/") + ".py")).exists(), f"{document}: `{line}`: no module {module}"
    if program.endswith("dvc"):
        assert len(words) > 1 and words[1] in DVC_COMMANDS, f"{document}: `{line}`: not a dvc command we use"
        settings = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-S", "--set-param")]
        for setting in settings:
            key = setting.split("=", 1)[0]
            assert key in params_keys(), f"{document}: `{line}`: params.yaml has no key {key!r}"
        if words[1] == "repro":
            for target in (w for w in words[2:] if not w.startswith("-")):
                stage = target.split(":")[-1]
                assert target.endswith("dvc.yaml") or "<" in stage or stage.startswith("[") or stage in dvc_stages(), \
                    f"{document}: `{line}`: no DVC stage {target!r}"


def test_the_documents_hold_commands():
    """The check is not vacuous: the README's two commands are among what it reads."""
    readme = commands("README.md")
    assert any(line.startswith("make repro") for line in readme) and any(line.startswith("make test") for line in readme)
