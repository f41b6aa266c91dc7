"""Tiny models here: one intra-op thread (as tests/conftest.py does for the tiny-model folders), and
lm-eval's log lines kept to errors."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _one_thread_tiny_models(one_thread):
    yield


@pytest.fixture(autouse=True)
def _quiet_lm_eval():
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
