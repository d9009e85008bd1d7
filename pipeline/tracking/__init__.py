"""MLflow runs of the pipeline: one experiment, a parent run per pipeline execution, a child per model.

Stages are separate processes (DVC runs each on its own), so they find their runs by tags rather
than by passing ids around: the parent is keyed by the git commit and the params.yaml content (one
pipeline execution = one revision of code and params), a child by (parent, corpus, model). Every
stage that touches a model's run calls ``model_run`` and gets the same run back.

The default store is embedded: ``sqlite:///<project>/mlflow.db`` (no server); ``mlflow.tracking_uri``
in params or ``$MLFLOW_TRACKING_URI`` point elsewhere, e.g. a server started by ``make ui``.
The experiment is created here, on the driver, before any run (never ``mlflow.set_experiment``: it
exports MLFLOW_EXPERIMENT_ID to child processes, docs/decisions.md, MLflow store).

    store.py    the tracking URI, checked before any work
    runs.py     Tracker: the experiment, the pipeline's run, model / sweep / trial runs, ending them
    results.py  test scores and curves per model run; the pipeline run's summary (report stage)
    view.py     the saved view `make ui` opens

Importers name the module they need, so a stage depends only on the files it imports (dvc.yaml).
"""
