"""Test-only settings, so `make test` behaves the same on every machine (docs/decisions.md, Test environment).

Set at import time, before any test starts a subprocess, so DVC, Ray and MLflow children inherit them.
"""
import os

TEST_ENVIRONMENT = {
    "DVC_NO_ANALYTICS": "1",  # no telemetry from DVC
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report from Ray
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every Ray listener on 127.0.0.1
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "HF_DATASETS_OFFLINE": "1",  # no hub access: loaders are tested on local fixtures
    "HF_HUB_OFFLINE": "1",
    "TQDM_MININTERVAL": "5",
}
os.environ.update(TEST_ENVIRONMENT)
