"""The runs of one pipeline execution, found by tags: the parent, one child per model, sweeps and trials."""
from __future__ import annotations

import hashlib
import subprocess
from contextlib import nullcontext

from pipeline.config import PARAMS_FILE, MlflowConfig
from pipeline.errors import UserError
from pipeline.tracking.store import _setting, check_store, tracking_uri

ROLE, KEY, CORPUS, MODEL = "bottleneck.role", "bottleneck.pipeline_key", "bottleneck.corpus", "bottleneck.model"
SWEEP, TRIAL = "bottleneck.sweep", "bottleneck.trial"
# The tag MLflow 3 reads for an experiment's kind: a model-training experiment, not a GenAI one.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Every tracker of this process, so a failing stage can end the runs it opened (end_open_runs).
_TRACKERS: list["Tracker"] = []


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

    def model_run(self, corpus: str, model: str, stage: str, role: str = "model") -> str:
        """The child run of (corpus, model) in this pipeline execution, created on first use; the
        train stage (re)opens it, evaluate and probe add to it (and finish it if they created it).
        ``role`` "ablation" marks a variant of `make ablations` (kept out of the saved comparison)."""
        parent = self.parent_run()
        filters = {ROLE: role, KEY: self.key, CORPUS: corpus, MODEL: model}
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


# The saved view `make ui` opens (pipeline/commands/ui.py): an experiment tag the UI reads as a "shared view
# state" (MLflow 3's runs page, `viewStateShareKey`): the translation runs of the newest pipeline and
# a line chart of bleu_by_length against its step, the bucket's lower bound.
