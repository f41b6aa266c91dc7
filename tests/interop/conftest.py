"""Interop tests run tiny models: one intra-op thread is as fast, and stays fast when other processes
load the CPU (several spinning threads on two busy cores are many times slower)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
