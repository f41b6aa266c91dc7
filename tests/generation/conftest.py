"""One intra-op thread for these tests: tiny models gain nothing from more, and on a busy machine
a second OpenMP thread waiting for a core slows each small op by orders of magnitude."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
