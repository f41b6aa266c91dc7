"""Shared test setup: nothing reaches a hub, and every test starts from the same random seed."""

import os
import tempfile

import pytest
import torch

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
# Tokenizers and tokenized data never land in the user's ~/.cache during tests.
os.environ.setdefault("ZOO_CACHE_DIR", tempfile.mkdtemp(prefix="zoo-test-cache-"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Folders of tiny-model tests: tiny tensors gain nothing from intra-op threads, and on a busy 2-core
# machine OpenMP workers contending with other processes made them up to 20x slower.
ONE_THREAD_FOLDERS = {"blocks", "models", "interop", "generation", "compare"}


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (``@pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request):
    if request.path.parent.name in ONE_THREAD_FOLDERS:
        request.getfixturevalue("one_thread")
