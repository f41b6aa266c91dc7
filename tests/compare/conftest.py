"""Shared setup of the comparison tests: one thread (tiny models, busy 2-core machines) and small
task options that build in milliseconds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: A reverse task small enough to train for a few steps in about a second.
TINY_REVERSE = {"type": "reverse", "train_size": 64, "val_size": 8, "test_size": 8, "max_len": 4}
