"""`make ui`: the MLflow UI over the project's store, and the one URL that opens the comparison.

    python -m pipeline.commands.ui [--host 127.0.0.1] [--port 5000]

Prints the URL of the runs page on the saved view the report stage writes (the translation models
of the newest pipeline, a line chart of BLEU against source length), then serves the configured
store (``mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``:
where the stages and cluster jobs log) with ``mlflow server`` until stopped. When the store is
already a tracking server (http://…), there is nothing to serve: it prints the URL on that server.
Before any pipeline has run it prints the experiment's runs page.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import stage_entry_point


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the MLflow UI and print the comparison URL.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback by default: the store is not for the network")
    parser.add_argument("--port", type=int, default=5000)
    arguments = parser.parse_args()
    params = load_params()
    from pipeline.tracking.view import VIEW_TAG, comparison_url
    from pipeline.tracking.runs import Tracker

    from pipeline.tracking.store import tracking_uri

    mlflow_config = params.mlflow
    own = {f"http://{host}:{arguments.port}" for host in (arguments.host, "127.0.0.1", "localhost")}
    if tracking_uri(mlflow_config).rstrip("/") in own:  # the stages log to the server this starts: serve mlflow.db
        mlflow_config = mlflow_config.model_copy(update={"tracking_uri": f"sqlite:///{Path('mlflow.db').resolve()}"})
    tracker = Tracker(mlflow_config)  # the store the stages log to, checked (a dead server: one line)
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    served = tracker.uri.startswith(("http://", "https://"))
    base = tracker.uri.rstrip("/") if served else f"http://{arguments.host}:{arguments.port}"
    url = comparison_url(base, tracker.experiment_id, VIEW_TAG in experiment.tags)
    print(f"BLEU by source length, the translation models side by side:\n  {url}", flush=True)
    if served:
        print(f"(the store is the MLflow server at {tracker.uri}: nothing to serve here)", flush=True)
        return
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    # exec: Ctrl-C and the test's terminate() reach the server itself.
    os.execv(mlflow, [mlflow, "server", "--backend-store-uri", tracker.uri, "--host", arguments.host,
                      "--port", str(arguments.port), "--workers", "1"])


if __name__ == "__main__":
    main()
