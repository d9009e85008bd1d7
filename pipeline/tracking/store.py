"""Where runs are stored: the tracking URI from params or the environment, checked before any work."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.config import MlflowConfig
from pipeline.errors import UserError

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
