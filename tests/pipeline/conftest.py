from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder: stages run in it with the repository on PYTHONPATH."""
    return tmp_path
