"""Shared fixtures for the data tests: offline mode, an isolated cache, one small tokenizer.

The tokenizer fixtures train once per session on a slice of the built-in corpus, which keeps the
suite fast on two CPU cores while still exercising real text.
"""

import os

# Before anything imports `datasets`/`huggingface_hub`, which read these at import time.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from zoo.data.corpus import builtin_corpus  # noqa: E402
from zoo.data.splits import split_documents  # noqa: E402
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer  # noqa: E402

from .helpers import SMALL_DOCS, SMALL_VOCAB  # noqa: E402


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One zoo cache for the session, so tokenizers trained by one test are reused by others."""
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write to ~/.cache: the default cache dir points at the session's temporary one."""
    monkeypatch.setenv("ZOO_CACHE_DIR", os.fspath(session_cache))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh, empty cache for tests that watch what gets (re)built."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return builtin_corpus()


@pytest.fixture(scope="session")
def small_split(corpus: list[str]) -> tuple[list[str], list[str]]:
    """(train, validation) of the first SMALL_DOCS built-in documents."""
    return split_documents(corpus[:SMALL_DOCS], val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def spm_tokenizer(small_split: tuple[list[str], list[str]]) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(small_split[0], vocab_size=SMALL_VOCAB)


@pytest.fixture(scope="session")
def char_tokenizer(small_split: tuple[list[str], list[str]]) -> CharTokenizer:
    return CharTokenizer.train(small_split[0])
