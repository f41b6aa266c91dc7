"""Paired statistics: known answers (scipy itself, textbook cases), the verdict rule, Holm, refusals."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from zoo.analysis.stats import (
    StatisticsError,
    check_seed_count,
    compare_to_baseline,
    decide,
    detectable_difference,
    holm,
    holm_corrected,
    paired_comparison,
    paired_interval,
    paired_p_value,
    seed_stats,
    seeds_needed,
)

# Student's sleep data (Cushny & Peebles 1905, analysed by "Student" 1908; R's `sleep` data set): extra
# hours of sleep of ten patients under two drugs. R's `t.test(extra ~ group, data = sleep, paired = TRUE)`
# prints t = -4.0621, df = 9, p-value = 0.002833, 95 % interval -2.4598858 -0.7001142, mean difference
# -1.58 (group 1 minus group 2; here group 2 minus group 1, so the signs flip).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_student_sleep_data_matches_the_textbook_numbers():
    c = paired_comparison(SLEEP_1, SLEEP_2, higher_is_better=True, smallest_effect=0.5)
    assert c.difference == pytest.approx(1.58)
    assert c.interval.low == pytest.approx(0.7001142, abs=1e-7)
    assert c.interval.high == pytest.approx(2.4598858, abs=1e-7)
    assert c.p_value == pytest.approx(0.002833, abs=1e-6)
    assert c.interval.method == "t" and c.interval.n == 10 and c.verdict == "better"


def test_interval_and_p_value_agree_with_scipy_directly():
    rng = np.random.default_rng(1)
    base = rng.normal(3.0, 0.2, 6)
    entry = base + rng.normal(0.05, 0.04, 6)
    c = paired_comparison(base, entry, higher_is_better=False, smallest_effect=0.01, alpha=0.1)
    reference = stats.ttest_rel(entry, base)
    assert c.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    low, high = reference.confidence_interval(confidence_level=0.9)
    assert (c.interval.low, c.interval.high) == pytest.approx((low, high), rel=1e-12)
    assert c.interval.confidence == pytest.approx(0.9)


def test_bootstrap_interval_is_scipys_bca_and_says_so():
    d = np.array([0.3, -0.1, 0.4, 0.2, 0.25, 0.05, 0.6, 0.1, 0.35, 0.15])
    mine = paired_interval(d, method="bootstrap")
    theirs = stats.bootstrap((d,), np.mean, method="BCa", n_resamples=9999, random_state=np.random.default_rng(0))
    assert (mine.low, mine.high) == pytest.approx(tuple(theirs.confidence_interval), rel=1e-12)
    assert mine.method == "bootstrap"
    c = paired_comparison(np.zeros(10), d, higher_is_better=True, smallest_effect=0.0, method="bootstrap")
    assert c.as_dict()["interval_method"] == "bootstrap" and "bootstrap-interval" in c.describe()
    assert c.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue)  # the p-value is the t-test's either way


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_entries_that_differ_only_in_name_read_no_detectable_difference(higher_is_better):
    values = [2.31, 2.45, 2.28, 2.39, 2.36]
    c = paired_comparison(values, list(values), higher_is_better=higher_is_better, smallest_effect=0.005)
    assert c.verdict == "no detectable difference"
    assert (c.p_value, c.interval.low, c.interval.high, c.detectable) == (1.0, 0.0, 0.0, 0.0)
    assert c.note == "identical on every seed"


def test_float_noise_reads_no_detectable_difference():
    rng = np.random.default_rng(0)
    for _ in range(200):  # float32 rounding of the same computation: a few ulps either way
        base = rng.uniform(0.5, 5.0, 5).astype(np.float32)
        noisy = (base * (1 + rng.choice([-1, 0, 1], 5) * np.finfo(np.float32).eps)).astype(np.float32)
        c = paired_comparison(base.tolist(), noisy.tolist(), higher_is_better=False, smallest_effect=0.005)
        assert c.verdict == "no detectable difference", c.describe()


def test_a_clearly_broken_entry_reads_worse():
    rng = np.random.default_rng(2)
    loss = 2.3 + rng.normal(0, 0.05, 3)
    broken = loss + 1.5 + rng.normal(0, 0.05, 3)  # e.g. no positions at all
    assert paired_comparison(loss, broken, higher_is_better=False, smallest_effect=0.005).verdict == "worse"
    accuracy = [0.81, 0.78, 0.83]
    chance = [0.21, 0.19, 0.2]
    c = paired_comparison(accuracy, chance, higher_is_better=True, smallest_effect=0.005)
    assert c.verdict == "worse" and c.improvement < 0 and c.difference < 0
    assert paired_comparison(broken, loss, higher_is_better=False, smallest_effect=0.005).verdict == "better"


def test_zero_variance_pairs_are_exact_and_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns (and returns NaN) on these: we must not reach it
        same = paired_comparison([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], higher_is_better=False, smallest_effect=0.1)
        tiny = paired_comparison([1.0, 2.0, 3.0], [1.01, 2.01, 3.01], higher_is_better=False, smallest_effect=0.1)
        boot = paired_comparison([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], higher_is_better=False, smallest_effect=0.1,
                                 method="bootstrap")
    assert same.p_value == 0.0 and (same.interval.low, same.interval.high) == pytest.approx((0.5, 0.5))
    assert same.verdict == "worse" and "same difference on every seed" in same.note and same.detectable == 0.0
    assert tiny.verdict == "negligible"  # exact, real, and below the 0.1 that matters
    assert (boot.interval.low, boot.interval.high) == pytest.approx((0.5, 0.5))


def test_few_noisy_seeds_read_inconclusive_with_the_detectable_size():
    c = paired_comparison([2.0, 2.5, 1.8], [2.3, 2.2, 2.1], higher_is_better=False, smallest_effect=0.01)
    assert c.verdict == "inconclusive"
    assert c.detectable > 0.3 and f"could detect >= {c.detectable:.3g}" in c.describe()


def test_decide_covers_each_branch():
    m = 0.1
    assert decide(0.5, 0.3, 0.7, 0.001, smallest_effect=m) == "better"
    assert decide(-0.5, -0.7, -0.3, 0.001, smallest_effect=m) == "worse"
    assert decide(0.05, 0.02, 0.08, 0.001, smallest_effect=m) == "negligible"
    assert decide(0.01, -0.05, 0.07, 0.6, smallest_effect=m) == "no detectable difference"
    assert decide(0.01, -0.05, 0.1, 0.6, smallest_effect=m) == "no detectable difference"  # the ends count as inside
    assert decide(0.05, -0.05, 0.15, 0.3, smallest_effect=m) == "inconclusive"
    assert decide(0.5, 0.3, 0.7, 0.06, smallest_effect=m) == "inconclusive"  # not significant after correction
    assert decide(0.0, 0.0, 0.0, 1.0, smallest_effect=0.0) == "no detectable difference"


def test_detectable_difference_has_the_stated_power_by_simulation():
    n, sd = 5, 0.03
    delta = detectable_difference(sd, n)
    rng = np.random.default_rng(0)
    samples = rng.normal(delta, sd, (40_000, n))
    rejected = stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)  # Monte Carlo error ≈ 0.002
    approx = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
    assert delta == pytest.approx(approx, rel=0.05)


def test_detectable_difference_falls_with_more_seeds_and_grows_with_the_spread():
    sizes = [detectable_difference(0.02, n) for n in range(2, 30)]
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False))
    assert detectable_difference(0.04, 5) == pytest.approx(2 * detectable_difference(0.02, 5))
    assert detectable_difference(0.0, 5) == 0.0


def test_seeds_needed_matches_gpower():
    # G*Power 3 (Faul et al., 2007), "t tests - means: difference from constant (one sample case)",
    # two tails, alpha 0.05, power 0.80: effect size d = 1 needs 10, d = 0.5 needs 34.
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(0.02, 0.01) == 34
    assert seeds_needed(0.0, 0.01) == 3  # no spread at all: the fewest that give a verdict
    n = seeds_needed(0.03, 0.02)
    assert detectable_difference(0.03, n) <= 0.02 < detectable_difference(0.03, n - 1)
    with pytest.raises(StatisticsError, match="effect=0"):
        seeds_needed(0.03, 0)


def test_holm_matches_the_worked_example():
    # Wikipedia, "Holm–Bonferroni method", Example: p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05 rejects H1
    # and H4 only. By hand: sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 →
    # running maximum 0.02, 0.03, 0.06, 0.06 (R's p.adjust(..., "holm") gives the same).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [a < 0.05 for a in adjusted] == [True, False, False, True]
    assert holm([0.3]) == [0.3] and holm([0.6, 0.6]) == [1.0, 1.0] and holm([]) == []
    with pytest.raises(StatisticsError, match="p-values"):
        holm([0.1, float("nan")])


def test_compare_to_baseline_corrects_across_the_table():
    rng = np.random.default_rng(3)
    base = 2.3 + rng.normal(0, 0.1, 5)
    results = {
        "baseline": base.tolist(),
        "renamed": base.tolist(),
        "broken": (base + 0.8 + rng.normal(0, 0.02, 5)).tolist(),
        "marginal": (base - 0.02 + rng.normal(0, 0.015, 5)).tolist(),
    }
    table = compare_to_baseline(results, baseline="baseline", higher_is_better=False, smallest_effect=0.005)
    assert list(table) == ["renamed", "broken", "marginal"]
    raw = [paired_comparison(base, results[n], higher_is_better=False, smallest_effect=0.005).p_value for n in table]
    assert [c.p_value for c in table.values()] == pytest.approx(raw)
    assert [c.p_adjusted for c in table.values()] == pytest.approx(holm(raw))
    assert table["renamed"].verdict == "no detectable difference" and table["broken"].verdict == "worse"
    assert all(c.correction == "holm" for c in table.values())
    record = json.loads(json.dumps({n: c.as_dict() for n, c in table.items()}))
    assert record["broken"]["verdict"] == "worse" and record["broken"]["ci_low"] > 0.7
    numbers = [v for r in record.values() for v in r.values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)


def test_holm_can_turn_a_lone_significant_entry_inconclusive():
    base = [1.00, 1.10, 0.95, 1.05]
    entry = [0.97, 1.02, 0.93, 1.01]  # alone: p ≈ 0.048
    alone = paired_comparison(base, entry, higher_is_better=False, smallest_effect=0.01)
    assert alone.p_value < 0.05 and alone.verdict == "better"
    table = compare_to_baseline({"base": base, "a": entry, "b": list(base), "c": list(base)}, baseline="base",
                                higher_is_better=False, smallest_effect=0.01)
    assert table["a"].p_adjusted == pytest.approx(min(1.0, 3 * alone.p_value))
    assert table["a"].verdict == "inconclusive"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paired_comparison([1.0], [1.1], higher_is_better=True, smallest_effect=0.0),
         "intervals need >= 2 seeds and verdicts >= 3"),
        (lambda: paired_comparison([1.0, 2.0], [1.1, 2.1], higher_is_better=True, smallest_effect=0.0),
         "2 seed.*verdicts >= 3"),
        (lambda: paired_interval([0.1]), "1 seed.*intervals need >= 2"),
        (lambda: paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0], higher_is_better=True, smallest_effect=0.0),
         "2 seed value.*baseline 3"),
        (lambda: paired_comparison([1.0, float("nan"), 3.0], [1, 2, 3], higher_is_better=True, smallest_effect=0.0),
         "baseline has a non-finite value at seed position 1"),
        (lambda: paired_comparison([1, 2, 3], [1, 2, 3], higher_is_better=True, smallest_effect=-1.0),
         "smallest_effect=-1.0"),
        (lambda: paired_interval([0.1, 0.2, 0.3], method="jackknife"), "'jackknife' is not one of"),
        (lambda: compare_to_baseline({"a": [1, 2, 3]}, baseline="b", higher_is_better=True, smallest_effect=0.0),
         "baseline 'b' is not an entry; entries: 'a'"),
        (lambda: compare_to_baseline({"a": [1, 2, 3], "b": [1, 2]}, baseline="a", higher_is_better=True,
                                     smallest_effect=0.0), "b has 2 seed value"),
    ],
)
def test_refusals_are_one_line(call, message):
    with pytest.raises(StatisticsError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_check_seed_count_before_training():
    check_seed_count(3)
    check_seed_count(2, verdict=False)
    with pytest.raises(StatisticsError, match="2 seed"):
        check_seed_count(2)


def test_p_value_and_seed_stats():
    assert paired_p_value([0.0, 0.0, 0.0]) == 1.0 and paired_p_value([0.2, 0.2]) == 0.0
    s = seed_stats([1.0, 1.2])
    assert s.mean == pytest.approx(1.1) and s.std == pytest.approx(math.sqrt(0.02)) and str(s) == "1.100 ± 0.141"
    assert str(seed_stats([1.0])) == "1.000"
    with pytest.raises(ValueError):
        seed_stats([])


def test_holm_corrected_spans_comparisons_against_different_baselines():
    base_a, base_b = [1.00, 1.10, 0.95, 1.05], [2.0, 2.2, 1.9, 2.1]
    lone = paired_comparison(base_a, [0.97, 1.02, 0.93, 1.01], higher_is_better=False, smallest_effect=0.01)
    same = paired_comparison(base_b, list(base_b), higher_is_better=False, smallest_effect=0.01)
    assert lone.verdict == "better"
    family = holm_corrected({"a": lone, "b": same})
    assert family["a"].p_value == lone.p_value and family["a"].p_adjusted == pytest.approx(2 * lone.p_value)
    assert family["a"].verdict == "inconclusive" and family["a"].correction == "holm"
    assert family["b"].verdict == "no detectable difference" and holm_corrected({}) == {}
