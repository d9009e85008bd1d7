"""`make ui`: the MLflow UI over the project's store, and the one URL that opens the comparison.

    python -m pipeline.commands.ui [--host 127.0.0.1] [--port 5000]

Prints the URL of the runs page on the saved view the report stage writes (the translation models
of the newest pipeline, a line chart of BLEU against source length), then serves the project's
``mlflow.db`` with ``mlflow server`` until stopped. Before any pipeline has run it prints the
experiment's runs page.
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

    # The project's own store, whatever mlflow.tracking_uri / $MLFLOW_TRACKING_URI say: they may name
    # the very server this starts.
    store = params.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{Path('mlflow.db').resolve()}"})
    tracker = Tracker(store)
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    url = comparison_url(f"http://{arguments.host}:{arguments.port}", tracker.experiment_id,
                         VIEW_TAG in experiment.tags)
    print(f"BLEU by source length, the translation models side by side:\n  {url}", flush=True)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    # exec: Ctrl-C and the test's terminate() reach the server itself.
    os.execv(mlflow, [mlflow, "server", "--backend-store-uri", tracker.uri, "--host", arguments.host,
                      "--port", str(arguments.port), "--workers", "1"])


if __name__ == "__main__":
    main()
