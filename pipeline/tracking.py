"""MLflow runs of the pipeline: one experiment, a parent run per pipeline execution, a child per model.

Stages are separate processes (DVC runs each on its own), so they find their runs by tags rather
than by passing ids around: the parent is keyed by the git commit and the params.yaml content (one
pipeline execution = one revision of code and params), a child by (parent, corpus, model). Every
stage that touches a model's run calls ``model_run`` and gets the same run back.

The default store is embedded: ``sqlite:///<project>/mlflow.db`` (no server); ``mlflow.tracking_uri``
in params or ``$MLFLOW_TRACKING_URI`` point elsewhere, e.g. a server started by ``make ui``.
The experiment is created here, on the driver, before any run (never ``mlflow.set_experiment``: it
exports MLFLOW_EXPERIMENT_ID to child processes, docs/decisions.md, MLflow store).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from pipeline.config import PARAMS_FILE, MlflowConfig
from pipeline.errors import UserError

ROLE, KEY, CORPUS, MODEL = "bottleneck.role", "bottleneck.pipeline_key", "bottleneck.corpus", "bottleneck.model"
SWEEP, TRIAL = "bottleneck.sweep", "bottleneck.trial"
# The tag MLflow 3 reads for an experiment's kind: a model-training experiment, not a GenAI one.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Every tracker of this process, so a failing stage can end the runs it opened (end_open_runs).
_TRACKERS: list["Tracker"] = []
SQLITE_HEADER = b"SQLite format 3\x00"
SERVER_TIMEOUT_S = 10  # to answer /health: a server that is up answers at once


def tracking_uri(config: MlflowConfig) -> str:
    return config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _setting(config: MlflowConfig) -> str:
    """Where the store's URI came from, for the message that says how to change it."""
    if config.tracking_uri:
        return "mlflow.tracking_uri in params.yaml"
    return "$MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "the project's default store"


def check_store(uri: str, setting: str) -> None:
    """A UserError, at once, for a store MLflow cannot use. MLflow itself retries first (an sqlite
    file it cannot open: ~2 min of engine retries; a server that refuses connections: 7 retries with
    backoff), then fails with a traceback."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///").split("?")[0])
        if path.is_dir():
            raise UserError(f"{path}: the MLflow store ({setting}) is a directory, not an SQLite file; "
                            "move it away or point mlflow.tracking_uri elsewhere")
        if path.exists():
            with path.open("rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
            if head and head != SQLITE_HEADER:  # an empty file is a new, empty database
                raise UserError(f"{path}: not an SQLite database, so not an MLflow store ({setting}); "
                                "move it away or point mlflow.tracking_uri elsewhere")
            # SQLite writes a journal beside the file: its folder must be writable too.
            if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK)):
                raise UserError(f"{path}: the MLflow store ({setting}) is read-only (SQLite needs to write "
                                "the file and its folder); make them writable or point mlflow.tracking_uri elsewhere")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{path.parent}: cannot create the MLflow store's folder ({setting}): "
                            f"{error.strerror}") from None
    elif uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            pass  # it answered: an older server, a proxy or an auth layer, not a dead address
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise UserError(f"{uri}: cannot reach the MLflow server ({setting}): {reason}; start it "
                            "(make ui serves one on 127.0.0.1:5000) or point mlflow.tracking_uri elsewhere") from None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pipeline_key(commit: str) -> str:
    params = PARAMS_FILE.read_bytes() if PARAMS_FILE.exists() else b""
    return hashlib.sha256(commit.encode() + b"\0" + params).hexdigest()[:16]


class Tracker:
    """An MlflowClient bound to the project's experiment and the current pipeline execution."""

    def __init__(self, config: MlflowConfig) -> None:
        from filelock import FileLock
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(config)
        check_store(self.uri, _setting(config))
        # A new sqlite store is created by schema migrations on first use; two stages doing that at
        # once (parallel `dvc exp` runs) collide ("table _alembic_tmp_tags already exists").
        lock = FileLock(self.uri.removeprefix("sqlite:///") + ".lock") if self.uri.startswith("sqlite:///") else None
        try:
            with lock if lock is not None else nullcontext():
                self.client = MlflowClient(self.uri)
                experiment = self.client.get_experiment_by_name(config.experiment)
                if experiment is None:
                    self.experiment_id = self.client.create_experiment(config.experiment,
                                                                       tags=dict([EXPERIMENT_KIND]))
                else:
                    self.experiment_id = experiment.experiment_id
                    if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:  # made by an older version
                        self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
        except OSError as error:  # the lock file: a folder where no file can be created
            raise UserError(f"{error.filename or self.uri}: cannot use the MLflow store ({_setting(config)}): "
                            f"{error.strerror or error}") from None
        except MlflowException as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
            raise UserError(f"{self.uri}: cannot use the MLflow store ({_setting(config)}): {first}") from None
        self.commit = git_commit()
        self.key = pipeline_key(self.commit)
        self.opened: list[str] = []  # runs this process set RUNNING: ended FAILED/KILLED if it fails
        self._parent_id: str | None = None
        _TRACKERS.append(self)

    def _open(self, run_id: str, status: str) -> None:
        if status != "RUNNING":  # a rerun after a failure, or a stage run again after report
            self.client.update_run(run_id, status="RUNNING")
        self.opened.append(run_id)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)
        if run_id in self.opened:
            self.opened.remove(run_id)

    def _find(self, filters: dict[str, str], newest: bool = False) -> str | None:
        run = self._find_run(filters, newest)
        return run.info.run_id if run is not None else None

    def _find_run(self, filters: dict[str, str], newest: bool = False):
        query = " and ".join(f"tags.`{name}` = '{value}'" for name, value in filters.items())
        runs = self.client.search_runs([self.experiment_id], query, max_results=1,
                                       order_by=[f"start_time {'DESC' if newest else 'ASC'}"])
        return runs[0] if runs else None

    def parent_run(self) -> str:
        """The pipeline execution's run: RUNNING from its first stage until report ends it
        (``finish_pipeline``), FAILED when a stage fails, RUNNING again when a stage reruns."""
        if self._parent_id in self.opened:
            return self._parent_id
        filters = {ROLE: "pipeline", KEY: self.key}
        run = self._find_run(filters)
        if run is None:
            tags = {**filters, "mlflow.source.git.commit": self.commit}
            run = self.client.create_run(self.experiment_id, tags=tags,
                                         run_name=f"pipeline {self.commit[:8]} {self.key[:6]}")
        self._parent_id = run.info.run_id
        self._open(self._parent_id, run.info.status)
        return self._parent_id

    def model_run(self, corpus: str, model: str, stage: str) -> str:
        """The child run of (corpus, model) in this pipeline execution, created on first use; the
        train stage (re)opens it, evaluate and probe add to it (and finish it if they created it)."""
        parent = self.parent_run()
        filters = {ROLE: "model", KEY: self.key, CORPUS: corpus, MODEL: model}
        run = self._find_run(filters)
        if run is None:
            family, _, cell = model.partition("-")
            # corpus, family and cell: the tags a user groups and filters the runs by in the UI.
            tags = {**filters, "mlflow.parentRunId": parent, "mlflow.source.git.commit": self.commit,
                    "model": model, "family": family, "cell": cell, "corpus": corpus}
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=f"{corpus}/{model}")
        run_id = run.info.run_id
        if stage == "train" or run.info.status == "RUNNING":  # train reopens; a new run is open too
            self._open(run_id, run.info.status)
        self.client.set_tag(run_id, f"dvc.stage.{stage}", "ran")
        return run_id

    def sweep_run(self, corpus: str, model: str, sweep: str, resume: bool) -> str:
        """The parent run of one sweep (``sweep``: its key), nested in the pipeline's run. A resumed
        sweep gets its newest run back; a sweep started afresh gets a new one."""
        filters = {ROLE: "sweep", SWEEP: sweep}
        run = self._find_run(filters, newest=True) if resume else None
        if run is None:
            tags = {**filters, KEY: self.key, CORPUS: corpus, MODEL: model, "model": model, "corpus": corpus,
                    "mlflow.parentRunId": self.parent_run(), "mlflow.source.git.commit": self.commit}
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=f"sweep {corpus}/{model}")
        self._open(run.info.run_id, run.info.status)  # an interrupted sweep ends KILLED, not RUNNING
        return run.info.run_id

    def trial_run(self, sweep_run: str, trial_id: str, config: dict) -> str:
        """A trial's child run of its sweep; a retried or resumed trial gets its run back, so its
        metrics land in one run."""
        sweep = self.client.get_run(sweep_run).data.tags
        filters = {ROLE: "trial", "mlflow.parentRunId": sweep_run, TRIAL: trial_id}
        run_id = self._find(filters)
        if run_id is None:
            tags = {**filters, SWEEP: sweep[SWEEP], "model": sweep["model"], "corpus": sweep["corpus"],
                    "mlflow.source.git.commit": sweep.get("mlflow.source.git.commit", self.commit)}
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=f"trial {trial_id}").info.run_id
            from mlflow.entities import Param

            self.client.log_batch(run_id, params=[Param(f"tune.{k}", str(v)) for k, v in sorted(config.items())])
        return run_id


def log_evaluation(config: MlflowConfig, corpus: str, metrics: dict, bucket_rows: list[dict],
                   figures: list[Path]) -> None:
    """Test scores into each model's child run. BLEU per bucket of the main decoder (beam search, or
    greedy when it is the only one) is the metric ``bleu_by_length`` with step = the bucket's lower
    bound, so MLflow's run comparison draws the BLEU-vs-length curves; greedy's, when beam search ran
    too, is ``bleu_by_length_greedy`` and its scores ``test_greedy_<name>``. metrics.json's ``"claim"``
    goes into both runs of each tested pair as ``claim_<decoder>_<key>`` (``shown`` as 0/1)."""
    from mlflow.entities import Metric

    tracker = Tracker(config)
    now = int(time.time() * 1000)
    decoders = {row.get("decoder") or "beam" for row in bucket_rows}
    main = "beam" if "beam" in decoders else "greedy"
    claims: dict[str, list[Metric]] = {}
    for decoder, by_cell in metrics.get("claim", {}).items():
        for cell, tested in by_cell.items():
            values = [Metric(f"claim_{decoder}_{key}", float(value), now, 0) for key, value in tested.items()
                      if isinstance(value, (int, float)) and key not in ("n_short", "n_long")]
            for family in ("rnnenc", "rnnsearch"):
                claims.setdefault(f"{family}-{cell}", []).extend(values)
    for model, scores in metrics.items():
        if model == "claim":
            continue
        run_id = tracker.model_run(corpus, model, "evaluate")
        values = [Metric(f"test_{name}", float(value), now, 0) for name, value in scores.items()
                  if isinstance(value, (int, float)) and name not in ("n", "no_unk_n")]
        values += [Metric(f"test_greedy_{name}", float(value), now, 0)
                   for name, value in scores.get("greedy", {}).items() if isinstance(value, (int, float))]
        for row in bucket_rows:
            if row["model"] == model and row.get("bleu") not in (None, ""):
                lower = int(str(row["bucket"]).split("-")[0].rstrip("+"))
                decoder = row.get("decoder") or main
                key = "bleu_by_length" if decoder == main else f"bleu_by_length_{decoder}"
                values.append(Metric(key, float(row["bleu"]), now, lower))
        values += claims.get(model, [])
        tracker.client.log_batch(run_id, metrics=values)
        if "signature" in scores:
            tracker.client.set_tag(run_id, "sacrebleu.signature", scores["signature"])
        for figure in figures:
            if model in figure.name or figure.name.startswith("bleu_by_length"):
                tracker.client.log_artifact(run_id, str(figure), artifact_path="figures")


def end_open_runs(status: str, keep_pipeline: bool = False) -> None:
    """Ends every run this process opened and did not finish (a stage that fails: its runs and the
    pipeline's run FAILED, KILLED when interrupted; one that succeeds: its runs FINISHED, the
    pipeline's left to report), so no run stays RUNNING forever."""
    for tracker in _TRACKERS:
        for run_id in list(tracker.opened):
            if keep_pipeline and run_id == tracker._parent_id:
                continue
            try:
                tracker.finish(run_id, status)
            except Exception:  # noqa: BLE001 - the store may be what failed; the stage's own error matters
                tracker.opened.remove(run_id)


# The saved view `make ui` opens (pipeline/ui.py): an experiment tag the UI reads as a "shared view
# state" (MLflow 3's runs page, `viewStateShareKey`): the translation runs of the newest pipeline and
# a line chart of bleu_by_length against its step, the bucket's lower bound.
VIEW_KEY = "bleu-by-length"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def comparison_view(key: str) -> str:
    """The tag value: an envelope whose ``state`` is the runs page's UI state as a JSON string."""
    import json

    section = "model-metrics"
    chart = {"type": "LINE", "uuid": "bleu-by-length", "metricSectionId": section, "deleted": False,
             "isGenerated": False, "runsCountToCompare": 50, "displayName": "bleu_by_length (x: source words)",
             "metricKey": "bleu_by_length", "selectedMetricKeys": ["bleu_by_length"], "xAxisKey": "step",
             "useGlobalXaxisKey": False, "lineSmoothness": 0, "useGlobalLineSmoothing": False,
             "scaleType": "linear", "xAxisScaleType": "linear", "yAxisKey": "metric", "yAxisExpressions": [],
             "ignoreOutliers": False, "range": {}, "selectedXAxisMetricKey": "", "displayPoints": True}
    state = {
        "searchFilter": f"tags.`{KEY}` = '{key}' and tags.`{ROLE}` = 'model' and tags.family != 'lm'",
        # Sorted by run name: the runs list flat (a start-time sort nests them under a collapsed parent).
        "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs", "datasetsFilter": [],
        "runsHiddenMode": "SHOW_ALL", "groupBy": None, "hideEmptyCharts": True, "isAccordionReordered": False,
        "chartsSearchFilter": "^bleu_by_length$",  # the UI adds a chart per metric: show this one (a regex)
        "selectedColumns": ["tags.`corpus`", "tags.`family`", "tags.`cell`", "metrics.`test_bleu`"],
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        "compareRunSections": [{"uuid": section, "name": "Model metrics", "display": True, "isReordered": False,
                                "deleted": False, "isGenerated": True}],
        "compareRunCharts": [chart],
    }
    now = int(time.time() * 1000)
    return json.dumps({"name": "BLEU by source length", "createdAt": now, "updatedAt": now,
                       "state": json.dumps(state)})


def comparison_url(base: str, experiment_id: str, has_view: bool) -> str:
    """The runs page of the experiment, on the saved comparison when there is one."""
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return url + (f"&viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART" if has_view else "")


def _flat(prefix: str, value) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(f"{prefix}.{key}" if prefix else key, item).items()}
    return {prefix: str(value)}


def finish_pipeline(config: MlflowConfig, params: dict, experiments: dict[str, Path]) -> str:
    """The report stage's last step: the pipeline's run gets params, the claim's numbers of both
    experiments (``<corpus>_<decoder>_<cell>_<key>``, ``shown`` as 0/1, the verdict as a tag), the
    BLEU-by-length figures and a table of every model × bucket, then ends FINISHED; the saved view
    that `make ui` opens is pointed at this pipeline's runs. ``experiments``: corpus → reports folder."""
    import csv
    import json

    import pandas as pd
    from mlflow.entities import Metric, Param

    tracker = Tracker(config)
    run_id = tracker.parent_run()
    logged = tracker.client.get_run(run_id).data.params
    values = [Param(k, v[:6000]) for k, v in sorted(_flat("", params).items()) if k not in logged]
    for start in range(0, len(values), 100):  # MLflow takes at most 100 params per call
        tracker.client.log_batch(run_id, params=values[start:start + 100])
    now = int(time.time() * 1000)
    metrics, rows = [], []
    for corpus, folder in experiments.items():
        claim = json.loads((folder / "metrics.json").read_text()).get("claim", {})
        for decoder, by_cell in claim.items():
            for cell, tested in by_cell.items():
                for name, value in tested.items():
                    if isinstance(value, (bool, int, float)):
                        metrics.append(Metric(f"{corpus}_{decoder}_{cell}_{name}", float(value), now, 0))
                tracker.client.set_tag(run_id, f"verdict.{corpus}.{decoder}.{cell}", tested.get("verdict", ""))
        with (folder / "bleu_by_length.csv").open(newline="") as handle:
            rows += [{"corpus": corpus, **row} for row in csv.DictReader(handle)]
        figure = folder / "figures" / "bleu_by_length.png"
        if figure.exists():
            tracker.client.log_artifact(run_id, str(figure), artifact_path=f"figures/{corpus}")
    tracker.client.log_batch(run_id, metrics=metrics)
    if rows:
        table = pd.DataFrame(rows)[["corpus", "model", "decoder", "bucket", "n", "bleu", "ci_low", "ci_high", "bp",
                                     "bleu_nobp"]]
        numeric = ["n", "bleu", "ci_low", "ci_high", "bp", "bleu_nobp"]
        table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
        tracker.client.log_table(run_id, data=table, artifact_file="bleu_by_length.json")
    tracker.client.set_experiment_tag(tracker.experiment_id, VIEW_TAG, comparison_view(tracker.key))
    tracker.finish(run_id)
    return run_id
