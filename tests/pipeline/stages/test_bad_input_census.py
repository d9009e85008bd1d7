"""The bad-input census (issue #13): each malformed input a user can hand the pipeline, the one line
the stage answers with, and proof that the failed run left nothing a later stage would take as valid.

Every case builds a small project in a temp folder, spoils one input and runs the real stage as a
user does (``python -m pipeline.<stage>``, through ``helpers.run_stage``). Then:
- stderr holds exactly one line besides progress bars, no traceback; exit code 2 for a params error
  (ConfigError), 1 for any other (``helpers.assert_one_line_error``); the line holds the fragments below;
- no file was created, changed or removed, and no folder created but the empty working parents
  ``data/`` and ``reports/`` (so no ``data/prepared``, no ``reports/…/metrics.json``, checkpoints untouched).
Two corpora are not errors (a UTF-8 BOM, CRLF line endings): they must prepare, and their check is
on the prepared text instead.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import yaml

from tests.pipeline.checkpoint_projects import fitted_checkpoints, project_with_checkpoints
from tests.pipeline.helpers import (assert_no_output, assert_one_line_error, run_stage, sentence_pairs,
                                    write_parallel, write_params)
from tests.pipeline.helpers import params_with, write_project_params
from tests.pipeline.stages.test_train_stage import tiny_project

CONFIG, DATA = 2, 1  # exit codes: ConfigError, any other UserError
PREPARED = "prepared"  # the case is not an error: the stage must succeed (checked by the case itself)
CKPT = "checkpoints/bible/rnnsearch-gru/best.ckpt"

# The census: case id → stage as run (args after `python -m pipeline.stages.`) → fragments of the one-line
# error (all must appear), exit code. A tuple inside the fragments means "any one of these".
CENSUS: list[tuple[str, str, list, int | str]] = [
    # --- params.yaml (checked before any work) ---------------------------------------------------------
    ("params-wrong-type", "train lm-gru", ["params.yaml: train.lr: Input should be a valid number", "'fast'"], CONFIG),
    ("params-unknown-key", "train lm-gru", ["params.yaml: train.learning_rate: unknown key (allowed: optimizer, lr,"],
     CONFIG),
    ("params-unknown-section", "train lm-gru", ["params.yaml: trian: unknown key (allowed: prepare,"], CONFIG),
    ("params-negative-size", "train lm-gru",
     ["params.yaml: model.hidden_size: Input should be greater than 0 (got -1)"], CONFIG),
    ("params-not-finite", "train lm-gru", ["params.yaml: train.lr: Input should be a finite number (got inf)"], CONFIG),
    ("params-unknown-profile", "train lm-gru",
     ["params.yaml: profile: unknown profile 'huge' (allowed: default, gpu, paper)"], CONFIG),
    ("params-profile-not-a-name", "train lm-gru", ["params.yaml: profile: expected a profile name (got ['paper'])"],
     CONFIG),
    ("params-profile-unknown-key", "train lm-gru",
     ["params.yaml: profiles.big.model.hiden_size: unknown key (allowed: emb_size, hidden_size"], CONFIG),
    ("params-devices-0", "train lm-gru", ["params.yaml: train.devices: Input should be greater than or equal to 1"],
     CONFIG),
    ("params-empty-model-list", "train lm-gru", ["params.yaml: experiments.models: the model list is empty"], CONFIG),
    ("params-loguniform-low-above-high", "train lm-gru",
     ["params.yaml: tune.search_space.rnnenc.train.lr: loguniform: low 0.1 must be below high 0.001"], CONFIG),
    ("params-loguniform-low-zero", "train lm-gru",
     ["params.yaml: tune.search_space.rnnenc.train.lr: loguniform: low must be > 0 (got 0.0)"], CONFIG),
    ("params-search-space-untunable-key", "train lm-gru",
     ["params.yaml: tune.search_space: rnnenc.train.devices: not a tunable key"], CONFIG),
    ("params-files-tsv-and-src", "prepare", ["params.yaml: prepare.files: set either tsv or src+tgt, not both"],
     CONFIG),
    ("params-invalid-yaml", "train lm-gru",
     ["params.yaml:4: invalid YAML: expected ',' or ']', but got ':'", "flow sequence that starts on line 3"], CONFIG),
    ("params-duplicate-key", "train lm-gru", ["params.yaml:3: duplicate key 'lr' (first given on line 2)"], CONFIG),
    ("params-not-utf8", "train lm-gru", ["params.yaml:2: invalid UTF-8"], CONFIG),
    ("params-not-a-mapping", "train lm-gru", ["params.yaml: expected a mapping of sections, got list"], CONFIG),
    ("params-missing", "train lm-gru", ["params.yaml: file not found (run from the project root)"], CONFIG),
    ("params-key-removed", "train lm-gru", ["params.yaml: train.lr: missing (params.yaml holds every setting"], CONFIG),
    ("params-is-a-directory", "train lm-gru", ["params.yaml: cannot read: Is a directory"], CONFIG),
    # --- a user's corpus (prepare.source: files) -------------------------------------------------------
    ("corpus-empty-file", "prepare", ["corpus.tsv: no text (empty or whitespace only)"], DATA),
    ("corpus-whitespace-only", "prepare", ["corpus.en: no text (empty or whitespace only)"], DATA),
    ("corpus-nul-byte", "prepare", ["corpus.tsv:3: NUL byte"], DATA),
    ("corpus-utf16", "prepare", ["corpus.tsv: UTF-16 text"], DATA),
    ("corpus-utf8-bom", "prepare", [], PREPARED),  # the BOM is not text: not in data/prepared/*/src.txt
    ("corpus-crlf", "prepare", [], PREPARED),  # no "\r" in the prepared text
    ("corpus-1mb-line", "prepare", ["corpus.en:2: line of 1048577 bytes"], DATA),
    ("corpus-binary", "prepare", ["corpus.tsv:1:", ("invalid UTF-8", "NUL byte")], DATA),
    ("corpus-truncated-gzip", "prepare", ["corpus.tsv.gz: truncated or corrupt gzip"], DATA),
    ("corpus-line-counts-differ", "prepare", ["corpus.en has 5 lines but", "corpus.fr has 7"], DATA),
    ("corpus-tsv-one-field", "prepare", ["corpus.tsv:2: expected 2 tab-separated fields"], DATA),
    ("corpus-tsv-three-fields", "prepare", ["corpus.tsv:2: expected 2 tab-separated fields"], DATA),
    ("corpus-directory", "prepare", ["corpus.tsv: is a directory"], DATA),
    ("corpus-missing", "prepare", ["corpus.tsv: file not found"], DATA),
    ("corpus-unreadable", "prepare", ["corpus.tsv", "cannot read"], DATA),  # skipped as root
    # --- prepared data and checkpoints -----------------------------------------------------------------
    ("ckpt-truncated", "evaluate", [f"{CKPT}: truncated or not a checkpoint file", "`dvc checkout`",
                                    "delete it and retrain: python -m pipeline.stages.train rnnsearch-gru"], DATA),
    ("ckpt-empty", "probe", [f"{CKPT}: truncated or not a checkpoint file", "`dvc checkout`"], DATA),
    ("ckpt-other-model", "evaluate", [f"{CKPT}: holds 'lm-gru', not 'rnnsearch-gru'", "`dvc checkout`",
                                      "python -m pipeline.stages.train rnnsearch-gru"], DATA),
    ("ckpt-other-vocabulary", "evaluate", [f"{CKPT}: trained with 16 tgt words but the prepared vocabulary has 17",
                                           "retrain rnnsearch-gru on the current corpus"], DATA),
    ("ckpt-resume-truncated", "train lm-gru", ["checkpoints/bible/lm-gru/last.ckpt: truncated or not a checkpoint file",
                                               "delete it and run the stage again to resume from best.ckpt"], DATA),
    ("tuned-result-corrupt", "train lm-gru", ["reports/tune/lm-gru.json: not a sweep result"], DATA),
    ("vocab-folder-missing", "evaluate", ["data/prepared/vocab/src.json: not found",
                                          "python -m pipeline.stages.prepare"], DATA),
    ("vocab-file-missing", "probe", ["data/prepared/vocab/tgt.json: not found", "python -m pipeline.stages.prepare"], DATA),
    ("ragged-offsets-past-ids", "evaluate", ["data/prepared/test/src.offsets.npy: offsets run from 0 to",
                                             "but src.ids.npy holds", "rerun the prepare stage"], DATA),
    ("ragged-ids-truncated", "evaluate", ["data/prepared/test/tgt.ids.npy: cannot read", "rerun the prepare stage"],
     DATA),
    ("ragged-offsets-decrease", "probe", ["data/prepared/train/src.offsets.npy: offsets decrease at sentence 5"], DATA),
    ("train-data-damaged", "train lm-gru", ["data/prepared/train/tgt.offsets.npy: offsets decrease at sentence 5"], DATA),
    ("train-vocab-missing", "train lm-gru", ["data/prepared/vocab/src.json: not found", "prepare stage"], DATA),
    ("vocab-not-json", "evaluate", ["data/prepared/vocab/tgt.json: not a vocabulary file", "rerun the prepare stage"],
     DATA),
    ("corpus-json-not-json", "evaluate", ["data/prepared/corpus.json: not a corpus description",
                                          "python -m pipeline.stages.prepare"], DATA),
    ("split-sides-differ", "evaluate", ["data/prepared/test: 32 source but 31 target sentences",
                                        "rerun the prepare stage"], DATA),
    # --- the MLflow store (train is the first stage to open it) ----------------------------------------
    ("mlflow-db-is-a-directory", "train lm-gru", ["mlflow.db: the MLflow store", "is a directory, not an SQLite file"],
     DATA),
    ("mlflow-db-not-sqlite", "train lm-gru", ["mlflow.db: not an SQLite database"], DATA),
    ("mlflow-store-unwritable", "train lm-gru", ["/sys/bottleneck-census: cannot create the MLflow store's folder"],
     DATA),
    ("mlflow-server-refuses", "train lm-gru", ["http://127.0.0.1:9: cannot reach the MLflow server",
                                               "mlflow.tracking_uri", "Connection refused"], DATA),
    ("mlflow-unknown-scheme", "train lm-gru", ["ftp://mlflow.invalid/store: cannot use the MLflow store"], DATA),
]

# --- how each case spoils its project --------------------------------------------------------------------

SETUPS: dict[str, Callable[[Path, pytest.FixtureRequest], Optional[Callable[[Path], None]]]] = {}


def setup(*case_ids: str):
    def register(function):
        for case_id in case_ids:
            SETUPS[case_id] = function
        return function

    return register


PARAMS_TEXT = {
    "params-wrong-type": "train: {lr: fast}\n",
    "params-unknown-key": "train: {learning_rate: 0.1}\n",
    "params-unknown-section": "trian: {lr: 0.1}\n",
    "params-negative-size": "model: {hidden_size: -1}\n",
    "params-not-finite": "train: {lr: .inf}\n",
    "params-unknown-profile": "profile: huge\nprofiles: {paper: {model: {hidden_size: 1000}}}\n",
    "params-profile-not-a-name": "profile: [paper]\nprofiles: {paper: {}}\n",
    "params-profile-unknown-key": "profile: big\nprofiles: {big: {model: {hiden_size: 3}}}\n",
    "params-devices-0": "train: {devices: 0}\n",
    "params-empty-model-list": "experiments: {models: []}\n",
    "params-loguniform-low-above-high": "tune:\n  search_space:\n    rnnenc: {train.lr: {loguniform: [0.1, 0.001]}}\n",
    "params-loguniform-low-zero": "tune:\n  search_space:\n    rnnenc: {train.lr: {loguniform: [0, 0.01]}}\n",
    "params-search-space-untunable-key": "tune:\n  search_space:\n    rnnenc: {train.devices: {choice: [1, 2]}}\n",
    "params-files-tsv-and-src": "prepare:\n  source: files\n  files: {tsv: c.tsv, src: c.en, tgt: c.fr}\n",
    "params-invalid-yaml": "train:\n  lr: 0.1\n  devices: [1\nmodel: {}\n",  # the "[" is never closed
    "params-duplicate-key": "train:\n  lr: 0.1\n  lr: 0.2\n",
    "params-not-a-mapping": "- train\n- model\n",
}


PARAMS_SYNTAX = {"params-invalid-yaml", "params-duplicate-key", "params-not-a-mapping"}  # the whole file


@setup(*PARAMS_TEXT)
def params_text(project, request):
    """A YAML error is the file as given; a bad value is the repository's params.yaml with it laid over."""
    case = request.node.callspec.id
    if case in PARAMS_SYNTAX:
        (project / "params.yaml").write_text(PARAMS_TEXT[case])
    else:
        write_project_params(project, yaml.safe_load(PARAMS_TEXT[case]))


@setup("params-key-removed")
def params_key_removed(project, request):
    """A key deleted from params.yaml is an error, not a default the schema would fill in silently."""
    params = params_with()
    del params["train"]["lr"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@setup("params-not-utf8")
def params_latin1(project, request):
    (project / "params.yaml").write_bytes(b"mlflow:\n  experiment: caf\xe9\n")


@setup("params-missing")
def params_missing(project, request):
    pass


@setup("params-is-a-directory")
def params_directory(project, request):
    (project / "params.yaml").mkdir()


# A user's corpus: enough short pairs for small splits, so the two non-error cases prepare for real.
SPLIT = {"test_size": 20, "dev_size": 20}


def files_params(project, **files):
    write_params(project, source="files", files={"block_lines": 10, **files}, split=SPLIT, workers=1)


def tsv_lines(count=120):
    return [f"{src}\t{tgt}" for src, tgt in sentence_pairs(count, max_words=12)]


def tsv_corpus(project, data: bytes, name="corpus.tsv"):
    (project / name).write_bytes(data)
    files_params(project, tsv=name)


@setup("corpus-empty-file")
def corpus_empty(project, request):
    tsv_corpus(project, b"")


@setup("corpus-whitespace-only")
def corpus_whitespace(project, request):
    # Two files: in a TSV, a blank line is first of all a line without its tab (its own census row).
    src, tgt = write_parallel(project, [(" ", "a"), ("\t", "b"), ("", "c"), ("   \r", "d")])
    files_params(project, src=src.name, tgt=tgt.name)


@setup("corpus-nul-byte")
def corpus_nul(project, request):
    lines = tsv_lines()
    lines[2] = lines[2].replace(" ", "\0", 1)
    tsv_corpus(project, "".join(line + "\n" for line in lines).encode())


@setup("corpus-utf16")
def corpus_utf16(project, request):
    tsv_corpus(project, "".join(line + "\n" for line in tsv_lines()).encode("utf-16"))  # with its BOM


@setup("corpus-utf8-bom")
def corpus_utf8_bom(project, request):
    tsv_corpus(project, "".join(line + "\n" for line in tsv_lines()).encode("utf-8-sig"))

    def check(project):
        for split in ("train", "dev", "test"):
            text = (project / f"data/prepared/{split}/src.txt").read_text(encoding="utf-8")
            assert "\ufeff" not in text, split

    return check


@setup("corpus-crlf")
def corpus_crlf(project, request):
    tsv_corpus(project, "".join(line + "\r\n" for line in tsv_lines()).encode())

    def check(project):
        texts = list((project / "data/prepared").glob("*/*.txt"))
        assert len(texts) >= 6  # src.txt and tgt.txt of every split
        for path in texts:
            assert "\r" not in path.read_text(encoding="utf-8"), path

    return check


@setup("corpus-1mb-line")
def corpus_long_line(project, request):
    src, tgt = write_parallel(project, sentence_pairs(120, max_words=12))
    lines = src.read_text().splitlines()
    lines[1] = "x" * (1 << 20)  # 1 MiB, and its newline
    src.write_text("".join(line + "\n" for line in lines))
    files_params(project, src=src.name, tgt=tgt.name)


@setup("corpus-binary")
def corpus_binary(project, request):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
    tsv_corpus(project, png + bytes(range(256)) * 4)


@setup("corpus-truncated-gzip")
def corpus_truncated_gzip(project, request):
    data = gzip.compress("".join(line + "\n" for line in tsv_lines(300)).encode())
    tsv_corpus(project, data[: len(data) * 2 // 3], name="corpus.tsv.gz")


@setup("corpus-line-counts-differ")
def corpus_line_counts(project, request):
    src, tgt = write_parallel(project, sentence_pairs(5))
    tgt.write_text("".join(f"t{i}\n" for i in range(7)))
    files_params(project, src=src.name, tgt=tgt.name)


@setup("corpus-tsv-one-field")
def corpus_one_field(project, request):
    tsv_corpus(project, b"a b\tA B\nno tab here\nc d\tC D\n")


@setup("corpus-tsv-three-fields")
def corpus_three_fields(project, request):
    tsv_corpus(project, b"a b\tA B\nc\tC\textra\nd e\tD E\n")


@setup("corpus-directory")
def corpus_directory(project, request):
    (project / "corpus.tsv").mkdir()
    files_params(project, tsv="corpus.tsv")


@setup("corpus-missing")
def corpus_missing(project, request):
    files_params(project, tsv="corpus.tsv")


@setup("corpus-unreadable")
def corpus_unreadable(project, request):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    tsv_corpus(project, "".join(line + "\n" for line in tsv_lines()).encode())
    (project / "corpus.tsv").chmod(0)


# Prepared data and checkpoints: the tiny corpus with tiny fitted checkpoints where train puts them.
EVALUATE = {"beam_size": 2, "batch_sentences": 8, "bootstrap_samples": 20, "heatmaps": 0}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    return fitted_checkpoints(tmp_path_factory.mktemp("checkpoints"), ["lm-gru", "rnnsearch-gru"])


def evaluated_project(project, request, models=("rnnsearch-gru",)):
    return project_with_checkpoints(project, request.getfixturevalue("checkpoints"), list(models), "bible",
                                    list(models), evaluate=EVALUATE)


@setup("ckpt-truncated")
def ckpt_truncated(project, request):
    evaluated_project(project, request)
    checkpoint = project / CKPT
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) * 2 // 3])  # a copy cut short: a full disk, an interrupted transfer


@setup("ckpt-empty")
def ckpt_empty(project, request):
    evaluated_project(project, request)
    (project / CKPT).write_bytes(b"")


@setup("ckpt-other-model")
def ckpt_other_model(project, request):
    evaluated_project(project, request)
    (project / CKPT).write_bytes((request.getfixturevalue("checkpoints") / "lm-gru/best.ckpt").read_bytes())


@setup("ckpt-other-vocabulary")
def ckpt_other_vocabulary(project, request):
    evaluated_project(project, request)
    vocabulary = project / "data/prepared/vocab/tgt.json"  # prepared again after training, one word more
    data = json.loads(vocabulary.read_text())
    data["tokens"].append("b-new")
    vocabulary.write_text(json.dumps(data))


@setup("ckpt-resume-truncated")
def ckpt_resume_truncated(project, request):
    """A run of the same settings was killed while writing last.ckpt: the stage must not resume from it."""
    from pipeline.config import load_params
    from pipeline.training.precision import device_type, resolve
    from pipeline.training.checkpoints import fingerprint

    tiny_project(project)
    # The key the train stage stamps a run's folder with (as pipeline.stages.train.train computes it).
    params = load_params(project / "params.yaml")
    precision = resolve(params.train.precision, device_type(params.train.accelerator)).value
    params = params.model_copy(update={"train": params.train.model_copy(update={"precision": precision})})
    folder = project / "checkpoints/bible/lm-gru"
    folder.mkdir(parents=True)
    (folder / "fingerprint").write_text(fingerprint("lm-gru", params, project / "data/prepared"))
    best = (request.getfixturevalue("checkpoints") / "lm-gru/best.ckpt").read_bytes()
    (folder / "best.ckpt").write_bytes(best)
    (folder / "last.ckpt").write_bytes(best[: len(best) // 2])
    os.utime(folder / "best.ckpt", (time.time() - 60,) * 2)  # last.ckpt is the newer one


@setup("tuned-result-corrupt")
def tuned_result_corrupt(project, request):
    tiny_project(project, use_tuned=True)
    (project / "reports/tune").mkdir(parents=True)
    (project / "reports/tune/lm-gru.json").write_text('{"swept": true, "best": ')


@setup("vocab-folder-missing")
def vocab_folder_missing(project, request):
    evaluated_project(project, request)
    shutil.rmtree(project / "data/prepared/vocab")


@setup("vocab-file-missing")
def vocab_file_missing(project, request):
    evaluated_project(project, request)
    (project / "data/prepared/vocab/tgt.json").unlink()


@setup("ragged-offsets-past-ids")
def ragged_offsets_past_ids(project, request):
    evaluated_project(project, request)
    path = project / "data/prepared/test/src.offsets.npy"  # layout: pipeline/data/ragged.py
    offsets = np.load(path)
    offsets[-1] += 5
    np.save(path, offsets)


@setup("ragged-ids-truncated")
def ragged_ids_truncated(project, request):
    evaluated_project(project, request)
    path = project / "data/prepared/test/tgt.ids.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def swap_offsets(path: Path) -> None:
    """Offsets 5 and 6 swapped: the file still loads, but sentence 5 would end before it starts."""
    offsets = np.load(path)
    offsets[5], offsets[6] = offsets[6], offsets[5]
    np.save(path, offsets)


@setup("ragged-offsets-decrease")
def ragged_offsets_decrease(project, request):
    evaluated_project(project, request)
    swap_offsets(project / "data/prepared/train/src.offsets.npy")


@setup("train-data-damaged")
def train_data_damaged(project, request):
    tiny_project(project)
    swap_offsets(project / "data/prepared/train/tgt.offsets.npy")


@setup("train-vocab-missing")
def train_vocab_missing(project, request):
    tiny_project(project)
    (project / "data/prepared/vocab/src.json").unlink()


@setup("vocab-not-json")
def vocab_not_json(project, request):
    evaluated_project(project, request)
    (project / "data/prepared/vocab/tgt.json").write_text('{"kind": "word", "tok')


@setup("corpus-json-not-json")
def corpus_json_not_json(project, request):
    evaluated_project(project, request)
    (project / "data/prepared/corpus.json").write_text("src_lang: en\n")


@setup("split-sides-differ")
def split_sides_differ(project, request):
    """Each side's files agree with themselves, but the sides hold different sentence counts."""
    evaluated_project(project, request)
    test = project / "data/prepared/test"
    ids, offsets = np.load(test / "tgt.ids.npy"), np.load(test / "tgt.offsets.npy")
    np.save(test / "tgt.offsets.npy", offsets[:-1])
    np.save(test / "tgt.ids.npy", ids[: offsets[-2]])


# The MLflow store. Tests run as root, whom chmod does not stop, so a read-only store is simulated by
# what fails for root too: mlflow.db that is a directory, one that is not an SQLite file, and a store
# under /sys, where no one can create a file. (pipeline/tracking/store.py also refuses a store that
# os.access says is read-only: a chmod for other users, a read-only mount for root; not run here.)
def mlflow_project(project, **mlflow):
    tiny_project(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["mlflow"].update(mlflow)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@setup("mlflow-db-is-a-directory")
def mlflow_db_directory(project, request):
    mlflow_project(project)
    (project / "mlflow.db").mkdir()


@setup("mlflow-db-not-sqlite")
def mlflow_db_not_sqlite(project, request):
    mlflow_project(project)
    (project / "mlflow.db").write_text("runs: []\n")


@setup("mlflow-store-unwritable")
def mlflow_store_unwritable(project, request):
    mlflow_project(project, tracking_uri="sqlite:////sys/bottleneck-census/mlflow.db")


@setup("mlflow-server-refuses")
def mlflow_server_refuses(project, request):
    mlflow_project(project, tracking_uri="http://127.0.0.1:9")  # the discard port: nothing listens there


@setup("mlflow-unknown-scheme")
def mlflow_unknown_scheme(project, request):
    mlflow_project(project, tracking_uri="ftp://mlflow.invalid/store")


# --- the test ------------------------------------------------------------------------------------------

# A failed stage may leave the empty folders it works in, never an output folder.
WORKING_PARENTS = {"data", "reports"}


def snapshot(project: Path) -> dict[str, Optional[str]]:
    """Every path under the project: a file's content hash, None for a folder."""
    return {str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            for path in sorted(project.rglob("*"))}


def assert_nothing_left(project: Path, before: dict[str, Optional[str]]) -> None:
    after = snapshot(project)
    created = sorted(set(after) - set(before) - WORKING_PARENTS)
    changed = sorted(path for path in set(before) & set(after) if before[path] != after[path])
    removed = sorted(set(before) - set(after))
    assert (created, changed, removed) == ([], [], []), "a failed run must leave the project as it was"


@pytest.mark.parametrize("stage, fragments, outcome",
                         [pytest.param(*row[1:], id=row[0]) for row in CENSUS])
def test_bad_input(project, request, stage, fragments, outcome):
    check = SETUPS[request.node.callspec.id](project, request)
    before = snapshot(project)
    started = time.monotonic()
    result = run_stage(project, *stage.split())
    seconds = time.monotonic() - started
    if outcome == PREPARED:
        assert result.returncode == 0, result.stderr[-2000:]
        check(project)
        return
    line = assert_one_line_error(result, *(f for f in fragments if isinstance(f, str)), exit_code=outcome)
    for alternatives in (f for f in fragments if isinstance(f, tuple)):
        assert any(a in line for a in alternatives), line
    assert seconds < 60, f"{seconds:.0f} s: a bad input must fail fast"  # MLflow alone would retry for minutes
    assert_nothing_left(project, before)
    if stage == "prepare":
        assert_no_output(project)


def test_every_case_has_a_setup_and_the_census_is_large_enough():
    ids = [case_id for case_id, *_ in CENSUS]
    assert len(ids) == len(set(ids)) and set(ids) == set(SETUPS)
    assert len([i for i in ids if i != "corpus-unreadable"]) >= 30
