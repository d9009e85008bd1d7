"""benchmarks/page_faults.py compares the two allocator modes in alternating processes and checks that
both train the same parameters (tiny corpus here; the numbers are for benchmarks/README.md)."""
import subprocess
import sys

from tests.pipeline.helpers import REPO
from tests.pipeline.training.tiny_corpus import write_tiny_corpus


def test_both_modes_train_the_same_parameters(tmp_path):
    data = write_tiny_corpus(tmp_path / "tiny")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks/page_faults.py"), "--model", "rnnsearch-gru",
                             "--data", str(data), "--rounds", "1", "--warmup-steps", "1", "--steps", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["1"]]
    assert [row[1] for row in rows] == ["default", "kept"]
    assert all(float(row[2]) > 0 for row in rows)
    assert rows[0][-1] == rows[1][-1]  # the parameters' digest
    assert "parameters after the steps: the same in every process" in result.stdout
    assert "speed-up, kept over default" in result.stdout
