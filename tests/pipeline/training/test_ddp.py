"""A real 2-process Lightning DDP fit on CPU (gloo): both ranks train, on different batches."""
import json
import os
import subprocess
import sys

from tests.pipeline.helpers import REPO
from tests.pipeline.training.tiny_corpus import write_tiny_corpus


def test_two_ranks_fit_on_disjoint_batches(tmp_path):
    data = write_tiny_corpus(tmp_path / "tiny")
    output = tmp_path / "out"
    output.mkdir()
    environment = dict(os.environ, PYTHONPATH=str(REPO), MASTER_ADDR="127.0.0.1")
    result = subprocess.run([sys.executable, "-m", "tests.pipeline.training.ddp_probe", str(data), str(output)],
                            cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((output / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    for epoch in range(2):
        batches = [ranks[r]["epochs"][epoch] for r in (0, 1)]
        assert len(batches[0]) == len(batches[1]) > 0  # equal steps: no rank waits forever
        seen = [{i for batch in rank for i in batch} for rank in batches]
        # Disjoint shares, apart from at most one repeated batch that evens out the counts.
        assert len(seen[0] & seen[1]) <= max(len(b) for rank in batches for b in rank)
        assert len(seen[0] | seen[1]) == 1024  # together they cover the whole train split
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # reshuffled per epoch
    assert ranks[0]["dev_loss"] == ranks[1]["dev_loss"]  # synced across ranks
