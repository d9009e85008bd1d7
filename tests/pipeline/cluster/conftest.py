"""The session's single-node SLURM: started once for every test that asks for it, stopped (jobs
cancelled, daemons ended) when the session ends, passed or failed."""
import pytest

from tests.pipeline.cluster.slurm_daemons import SlurmCluster, missing


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    reason = missing()
    if reason:
        print(f"SLURM tests skipped: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def clean_queue(slurm):
    """The SLURM cluster, with no job of this test left running after it."""
    try:
        yield slurm
    finally:
        slurm.cancel_all()
