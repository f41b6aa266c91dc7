"""The notebook size switch and the RESULTS line."""

from __future__ import annotations

import pytest

from zoo.analysis import notebook_scale, pick, read_results, report
from zoo.analysis.notebook import setup_notebook


def test_scale_switch(monkeypatch):
    monkeypatch.delenv("ZOO_NOTEBOOK_SCALE", raising=False)
    assert notebook_scale() == "full" and pick(quick=1, full=2) == 2
    monkeypatch.setenv("ZOO_NOTEBOOK_SCALE", "quick")
    assert pick(quick=1, full=2) == 1
    monkeypatch.setenv("ZOO_NOTEBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="ZOO_NOTEBOOK_SCALE='huge'"):
        notebook_scale()


def test_setup_notebook_returns_the_scale(monkeypatch):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("ZOO_NOTEBOOK_SCALE", "quick")
    try:
        assert setup_notebook(cpu_threads=None) == "quick"
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(threads)


def test_report_round_trips_and_refuses_non_finite(capsys):
    report({"loss": 1.5, "names": ["a"], "nested": {"x": [1, 2]}, "held": True})
    line = capsys.readouterr().out.strip()
    results = read_results("noise\n" + line + "\n")
    assert results.pop("provenance")["zoo_fingerprint"]  # tests/analysis/test_provenance.py checks it
    assert results == {"held": True, "loss": 1.5, "names": ["a"], "nested": {"x": [1, 2]}}
    with pytest.raises(ValueError, match=r"results.nested.x\[1\]"):
        report({"nested": {"x": [1.0, float("nan")]}})
    with pytest.raises(ValueError, match="no RESULTS"):
        read_results("nothing here")
