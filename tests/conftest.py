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
