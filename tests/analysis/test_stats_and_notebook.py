"""Seed statistics, the notebook size switch and the RESULTS line."""

from __future__ import annotations

import math

import pytest

from zoo.analysis import difference, notebook_scale, pick, read_results, report, seed_stats
from zoo.analysis.notebook import setup_notebook


def test_seed_stats_and_difference():
    a, b = seed_stats([1.0, 1.2]), seed_stats([1.5, 1.7])
    assert a.mean == pytest.approx(1.1) and a.std == pytest.approx(math.sqrt(0.02))
    assert str(a) == "1.100 ± 0.141"
    far = difference(a, b)
    assert far.delta == pytest.approx(0.5) and not far.inside_spread and far.spread_known
    near = difference([1.0, 1.2], [1.05, 1.25])
    assert near.inside_spread and "inside the seed spread" in near.describe("nats")
    assert difference([0.0, 0.0], [0.5, 0.6]).describe() == "+0.550, outside the seed spread (±0.071)"
    single = difference([1.0], [1.1])
    assert not single.spread_known and not single.inside_spread and "spread unknown" in single.describe()
    with pytest.raises(ValueError):
        seed_stats([])


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
    assert read_results("noise\n" + line + "\n") == {"held": True, "loss": 1.5, "names": ["a"], "nested": {"x": [1, 2]}}
    with pytest.raises(ValueError, match=r"results.nested.x\[1\]"):
        report({"nested": {"x": [1.0, float("nan")]}})
    with pytest.raises(ValueError, match="no RESULTS"):
        read_results("nothing here")
