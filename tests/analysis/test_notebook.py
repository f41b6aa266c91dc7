"""The notebook size switch and the RESULTS line."""

from __future__ import annotations

import pytest

from zoo.analysis import notebook_scale, paired_comparison, pick, read_results, report
from zoo.analysis.notebook import claim_verdict, overall_verdict, setup_notebook


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


def test_claim_verdicts_follow_the_paired_comparison():
    base = [4.18, 4.05, 4.30]
    worse = paired_comparison(base, [4.41, 4.30, 4.52], higher_is_better=False, smallest_effect=0.02)
    same = paired_comparison(base, list(base), higher_is_better=False, smallest_effect=0.02)
    noisy = paired_comparison(base, [4.40, 3.90, 4.35], higher_is_better=False, smallest_effect=0.02)
    assert (worse.verdict, same.verdict, noisy.verdict) == ("worse", "no detectable difference", "inconclusive")
    assert claim_verdict(worse, "worse") == "held" and claim_verdict(same, "worse") == "did not hold"
    assert claim_verdict(noisy, "worse") == "inconclusive"
    keeps_quality = {"no detectable difference", "negligible", "better"}
    assert claim_verdict(same, keeps_quality) == "held" and claim_verdict(worse, keeps_quality) == "did not hold"
    with pytest.raises(ValueError, match="'similar'"):
        claim_verdict(same, "similar")


def test_overall_verdict():
    assert overall_verdict(["held", True]) == "held"
    assert overall_verdict(["did not hold", False]) == "did not hold"
    assert overall_verdict(["held", "did not hold", "inconclusive"]) == "mixed"
    assert overall_verdict(["held", "inconclusive"]) == "inconclusive"
    assert overall_verdict(["inconclusive"]) == "inconclusive"
    with pytest.raises(ValueError, match="maybe"):
        overall_verdict(["held", "maybe"])
