import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """The models here are tiny: a second intra-op thread only adds synchronisation, and on a busy
    2-core machine it makes these tests several times slower. Restored after this folder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
