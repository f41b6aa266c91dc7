"""Paired statistics over seeds: is an entry better than a baseline, and how sure are we?

Entries of a comparison share their seeds (the same split and, where shapes allow, the same
initialisation seed), so the seed-to-seed noise common to both cancels in the *paired* differences
``entry[i] - baseline[i]``. Everything here works on those differences, with ``scipy.stats``:

- **Interval**: the mean difference with a ``1 - alpha`` (default 95 %) interval, Student's t on the
  paired differences (``method="t"``, the default) or a BCa bootstrap (``method="bootstrap"``: scipy's,
  9,999 resamples, a fixed generator so the numbers repeat; it needs ~10 seeds to mean much).
- **p-value**: the two-sided paired t-test (``scipy.stats.ttest_1samp`` on the differences, the same as
  ``ttest_rel``), whatever the interval method.
- **Correction**: Holm–Bonferroni across the entries of one table (``holm``; ``holm_corrected`` for a
  family of comparisons made separately).
- **Detectable difference**: the smallest true difference the paired t-test finds with 80 % power at
  this many seeds and the observed spread of the differences (``detectable_difference``).
- **Verdict** (``decide``), with ``m`` = the smallest difference that matters and ``p`` the (corrected)
  p-value:

  ====================================  ==============================  ==============================
  condition                             verdict                         reads as
  ====================================  ==============================  ==============================
  p < alpha and |mean| >= m             ``better`` / ``worse``          a real difference that matters
  p < alpha and |mean| < m              ``negligible``                  real, but too small to matter
  p >= alpha, interval inside [-m, m]   ``no detectable difference``    any difference is below m
  p >= alpha, interval reaches past m   ``inconclusive``                too few seeds to tell
  ====================================  ==============================  ==============================

  The interval is each comparison's own (not widened for the table's other tests); the correction acts
  through ``p``. The ends of ``[-m, m]`` count as inside.

  So two entries that compute the same function never read "better" or "worse": identical values
  give differences of exactly 0 (p = 1, interval [0, 0]); differences within ``float_tolerance``
  (relative, default 1e-6: a few float32 roundings) count as 0 too.

Seeds: an interval needs at least 2, a verdict at least 3 (with 2 the t distribution has one degree
of freedom: its 95 % interval is ±12.7 standard errors). ``seeds_needed`` says how many a given effect
needs. ``seed_stats`` stays as the plain mean ± sample standard deviation for printing.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

Verdict = Literal["better", "worse", "negligible", "no detectable difference", "inconclusive"]
IntervalMethod = Literal["t", "bootstrap"]
VERDICTS: tuple[Verdict, ...] = ("better", "worse", "negligible", "no detectable difference", "inconclusive")
INTERVAL_METHODS: tuple[IntervalMethod, ...] = ("t", "bootstrap")
MIN_SEEDS_INTERVAL = 2
MIN_SEEDS_VERDICT = 3
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


class StatisticsError(ValueError):
    """A request the statistics cannot answer honestly (too few seeds, unpaired or non-finite values)."""


@dataclass(frozen=True)
class SeedStats:
    """One measurement over seeds: the values, their mean and sample standard deviation (NaN for one seed)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def __str__(self) -> str:
        return f"{self.mean:.3f}" if len(self.values) == 1 else f"{self.mean:.3f} ± {self.std:.3f}"


def seed_stats(values: Iterable[float]) -> SeedStats:
    """``SeedStats`` of ``values`` (at least one)."""
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("seed_stats needs at least one value")
    return SeedStats(values)


def check_seed_count(n: int, *, verdict: bool = True) -> None:
    """Refuse, in one line, a seed count too small for an interval (< 2) or, when ``verdict``, a verdict (< 3).

    Callers that plan runs (``zoo compare``) call this before training anything.
    """
    need = MIN_SEEDS_VERDICT if verdict else MIN_SEEDS_INTERVAL
    if n < need:
        raise StatisticsError(
            f"{n} seed(s) is too few for a paired {'verdict' if verdict else 'interval'}: intervals need "
            f">= {MIN_SEEDS_INTERVAL} seeds and verdicts >= {MIN_SEEDS_VERDICT}")


def paired_differences(
    baseline: Sequence[float], entry: Sequence[float], *, float_tolerance: float = 1e-6, name: str = "entry"
) -> np.ndarray:
    """``entry[i] - baseline[i]`` for seeds paired by position; differences within ``float_tolerance``
    (relative to the larger of the two values) are rounding, and count as exactly 0.

    Raises:
        StatisticsError: The lengths differ, or a value is NaN or infinite.
    """
    base, other = np.asarray(baseline, dtype=float), np.asarray(entry, dtype=float)
    if base.ndim != 1 or other.ndim != 1 or len(base) != len(other):
        raise StatisticsError(
            f"{name} has {len(other)} seed value(s) and the baseline {len(base)}: paired statistics need "
            "one value per seed, the same seeds for both")
    for label, values in ((name, other), ("baseline", base)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise StatisticsError(f"{label} has a non-finite value at seed position {bad[0]} ({values[bad[0]]})")
    differences = other - base
    rounding = np.abs(differences) <= float_tolerance * np.maximum(np.abs(base), np.abs(other))
    return np.where(rounding, 0.0, differences)


@dataclass(frozen=True)
class PairedInterval:
    """The mean of paired differences (``entry - baseline``) with its interval.

    Attributes:
        n: Number of pairs (seeds).
        mean: Mean of the differences.
        sd: Sample standard deviation of the differences (ddof 1).
        low: Lower end of the interval.
        high: Upper end of the interval.
        confidence: The interval's coverage, ``1 - alpha``.
        method: ``t`` (Student's t on the differences) or ``bootstrap`` (BCa).
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    confidence: float
    method: IntervalMethod


def paired_interval(
    differences: Sequence[float], *, alpha: float = 0.05, method: IntervalMethod = "t"
) -> PairedInterval:
    """Mean and ``1 - alpha`` interval of paired differences (at least 2).

    With no spread (every difference equal) the interval is that value at both ends: an exact result.
    """
    d = np.asarray(differences, dtype=float)
    check_seed_count(len(d), verdict=False)
    if method not in INTERVAL_METHODS:
        raise StatisticsError(f"interval method {method!r} is not one of {list(INTERVAL_METHODS)}")
    if not 0 < alpha < 1:
        raise StatisticsError(f"alpha={alpha} must lie between 0 and 1")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if np.all(d == d[0]):  # no spread: scipy's t and bootstrap both return NaN here
        low = high = float(d[0])
    elif method == "t":
        low, high = stats.t.interval(1 - alpha, len(d) - 1, loc=mean, scale=sd / math.sqrt(len(d)))
    else:
        result = stats.bootstrap((d,), np.mean, confidence_level=1 - alpha, n_resamples=BOOTSTRAP_RESAMPLES,
                                 method="BCa", random_state=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = result.confidence_interval
    return PairedInterval(n=len(d), mean=mean, sd=sd, low=float(low), high=float(high), confidence=1 - alpha,
                          method=method)


def paired_p_value(differences: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test that the mean difference is 0.

    With no spread it is exact: 1 when every difference is 0, 0 when they all equal one nonzero value
    (scipy returns NaN or 0 with a warning there).
    """
    d = np.asarray(differences, dtype=float)
    check_seed_count(len(d), verdict=False)
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def _power_at(noncentrality: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t-test at noncentrality ``delta * sqrt(n) / sd``."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    # The lower tail as sf at -noncentrality (the same number by symmetry): scipy's nct.cdf returns NaN
    # far out in that tail for small df, where sf stays finite.
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality))


def detectable_difference(sd: float, n: int, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true mean difference a two-sided paired t-test at ``alpha`` detects with ``power``.

    Exact for normal differences with standard deviation ``sd``: the power of the test is
    ``P(|T| > t_{1-alpha/2, n-1})`` with ``T`` noncentral t (``n - 1`` degrees of freedom, noncentrality
    ``delta * sqrt(n) / sd``); this solves power(delta) = ``power`` for ``delta`` (``scipy.stats.nct``,
    Brent's method). About ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``, the usual
    approximation. 0 when ``sd`` is 0: then any difference shows.
    """
    if n < MIN_SEEDS_INTERVAL:
        raise StatisticsError(f"a detectable difference needs >= {MIN_SEEDS_INTERVAL} seeds, got {n}")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise StatisticsError(f"power={power} and alpha={alpha} must lie between 0 and 1")
    if not math.isfinite(sd) or sd < 0:
        raise StatisticsError(f"sd={sd} must be a finite number >= 0")
    if sd == 0:
        return 0.0
    high = 1.0
    while _power_at(high, n, alpha) < power:  # bracket the root; power rises with the noncentrality
        high *= 2
    noncentrality = optimize.brentq(lambda nc: _power_at(nc, n, alpha) - power, 0.0, high, xtol=1e-10)
    return noncentrality * sd / math.sqrt(n)


def seeds_needed(sd_of_differences: float, effect: float, power: float = 0.8, alpha: float = 0.05,
                 max_seeds: int = 10_000) -> int:
    """The fewest seeds whose paired t-test detects a true difference ``effect`` with ``power``.

    ``sd_of_differences`` is the seed-to-seed standard deviation of the paired differences (measure
    it: repeat the baseline, or take it from an earlier study). At least 3, the fewest that give a
    verdict.
    """
    if not effect > 0 or not math.isfinite(effect):
        raise StatisticsError(f"effect={effect} must be a finite number > 0")
    for n in range(MIN_SEEDS_VERDICT, max_seeds + 1):
        if detectable_difference(sd_of_differences, n, power=power, alpha=alpha) <= effect:
            return n
    raise StatisticsError(f"more than {max_seeds} seeds would be needed to detect {effect} at sd {sd_of_differences}")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (compare each with alpha).

    Sorted ascending, the i-th smallest (0-based) of m becomes ``(m - i) * p``, made non-decreasing
    along the sorted order and capped at 1 (Holm, 1979; R's ``p.adjust(method="holm")``). It controls
    the chance of any false "better" or "worse" in a table, without assuming the tests independent.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise StatisticsError(f"p-values must be numbers in [0, 1], got {list(p_values)}")
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return [float(a) for a in adjusted]


def decide(
    mean: float, low: float, high: float, p_value: float, *, smallest_effect: float, alpha: float = 0.05
) -> Verdict:
    """The verdict word for a difference measured in the *better* direction (positive = entry better).

    Args:
        mean: Mean difference, positive when the entry is better.
        low: Lower end of its interval (same direction).
        high: Upper end of its interval.
        p_value: Its p-value, already corrected for the table's other tests.
        smallest_effect: The smallest difference that matters (``m``, >= 0).
        alpha: Significance level.

    Returns:
        ``better`` / ``worse`` when significant and ``|mean| >= m``; ``negligible`` when significant and
        ``|mean| < m``; ``no detectable difference`` when not significant and the interval lies inside
        ``[-m, m]``; ``inconclusive`` when not significant and the interval reaches beyond it.
    """
    if p_value < alpha:
        if abs(mean) < smallest_effect:
            return "negligible"
        return "better" if mean > 0 else "worse"
    if -smallest_effect <= low and high <= smallest_effect:
        return "no detectable difference"
    return "inconclusive"


@dataclass(frozen=True)
class PairedComparison:
    """An entry against the baseline over paired seeds: every number behind the verdict.

    Differences are ``entry - baseline`` in the metric's own direction; ``improvement`` and the verdict
    use the better direction (``higher_is_better``).

    Attributes:
        interval: The mean difference and its interval (``entry - baseline``).
        baseline_mean: Mean of the baseline's values.
        entry_mean: Mean of the entry's values.
        p_value: Two-sided paired t-test, uncorrected.
        p_adjusted: The p-value the verdict used (Holm-corrected across a table; else ``p_value``).
        correction: ``holm`` or ``none``.
        detectable: Smallest true difference detectable with ``power`` at this many seeds and the
            observed sd of the differences (``detectable_difference``).
        power: The power ``detectable`` is computed at.
        smallest_effect: The smallest difference that matters.
        alpha: Significance level.
        higher_is_better: The metric's direction.
        verdict: See ``decide``.
        note: Why the numbers are exact, when they are (no spread in the differences); else empty.
    """

    interval: PairedInterval
    baseline_mean: float
    entry_mean: float
    p_value: float
    p_adjusted: float
    correction: str
    detectable: float
    power: float
    smallest_effect: float
    alpha: float
    higher_is_better: bool
    verdict: Verdict
    note: str

    @property
    def difference(self) -> float:
        """Mean of ``entry - baseline``."""
        return self.interval.mean

    @property
    def improvement(self) -> float:
        """The mean difference in the better direction: positive when the entry is better."""
        return self.interval.mean if self.higher_is_better else -self.interval.mean

    def describe(self, unit: str = "", pairs: str = "seeds") -> str:
        """E.g. ``-0.032 nats [-0.051, -0.013] (95 % t-interval, 5 seeds), p = 0.004 (Holm): better``.

        ``pairs`` names what the values were paired by (``rounds`` for interleaved timings, ``prompts``).
        """
        unit = f" {unit}" if unit else ""
        i = self.interval
        p = f"p = {self.p_adjusted:.2g}" + (" (Holm)" if self.correction == "holm" else "")
        where = f"{i.mean:+.3f}{unit} [{i.low:+.3f}, {i.high:+.3f}] ({100 * i.confidence:.0f} % {i.method}-interval, " \
                f"{i.n} {pairs}), {p}"
        verdict = self.verdict
        if verdict in ("no detectable difference", "inconclusive"):
            could = f"could detect >= {self.detectable:.3g}{unit}" if self.detectable else \
                "no spread: any difference shows"
            verdict += f" ({could}; smallest that matters {self.smallest_effect:.3g}{unit})"
        elif verdict == "negligible":
            verdict += f" (below the {self.smallest_effect:.3g}{unit} that matters)"
        return f"{where}: {verdict}" + (f"; {self.note}" if self.note else "")

    def as_dict(self) -> dict[str, Any]:
        """Every number as plain JSON values (for ``results.json`` and ``RESULTS`` lines)."""
        i = self.interval
        return {
            "n": i.n, "baseline_mean": self.baseline_mean, "entry_mean": self.entry_mean,
            "difference": i.mean, "improvement": self.improvement, "sd_difference": i.sd,
            "ci_low": i.low, "ci_high": i.high, "confidence": i.confidence, "interval_method": i.method,
            "p_value": self.p_value, "p_adjusted": self.p_adjusted, "correction": self.correction,
            "detectable_difference": self.detectable, "power": self.power,
            "smallest_effect": self.smallest_effect, "alpha": self.alpha,
            "higher_is_better": self.higher_is_better, "verdict": self.verdict, "note": self.note,
        }


def _with_p(comparison: PairedComparison, p_adjusted: float, correction: str) -> PairedComparison:
    """``comparison`` re-decided at a corrected p-value."""
    i = comparison.interval
    low, high = (i.low, i.high) if comparison.higher_is_better else (-i.high, -i.low)
    verdict = decide(comparison.improvement, low, high, p_adjusted, smallest_effect=comparison.smallest_effect,
                     alpha=comparison.alpha)
    return dataclasses.replace(comparison, p_adjusted=p_adjusted, correction=correction, verdict=verdict)


def paired_comparison(
    baseline: Sequence[float],
    entry: Sequence[float],
    *,
    higher_is_better: bool,
    smallest_effect: float,
    alpha: float = 0.05,
    method: IntervalMethod = "t",
    power: float = 0.8,
    float_tolerance: float = 1e-6,
    name: str = "entry",
) -> PairedComparison:
    """``entry`` against ``baseline``, one value per seed paired by position (at least 3 seeds).

    Args:
        baseline: The baseline's metric, one value per seed.
        entry: The entry's metric on the same seeds, in the same order.
        higher_is_better: The metric's direction (accuracy: True; loss, bits per byte: False).
        smallest_effect: The smallest difference that matters, in the metric's units (>= 0); a
            significant difference below it reads ``negligible``.
        alpha: Significance level; the interval covers ``1 - alpha``.
        method: Interval: ``t`` (Student's t on the differences) or ``bootstrap`` (BCa).
        power: The power at which ``detectable`` is computed.
        float_tolerance: Relative per-seed difference treated as rounding (exactly 0).
        name: The entry's name, for error messages.

    Raises:
        StatisticsError: Fewer than 3 seeds, unequal seed counts, non-finite values, a negative
            ``smallest_effect``.
    """
    if not math.isfinite(smallest_effect) or smallest_effect < 0:
        raise StatisticsError(f"smallest_effect={smallest_effect} must be a finite number >= 0")
    d = paired_differences(baseline, entry, float_tolerance=float_tolerance, name=name)
    check_seed_count(len(d), verdict=True)
    interval = paired_interval(d, alpha=alpha, method=method)
    p = paired_p_value(d)
    note = ""
    if np.all(d == d[0]):
        note = "identical on every seed" if d[0] == 0 else "the same difference on every seed (exact)"
    detectable = detectable_difference(interval.sd, len(d), power=power, alpha=alpha)
    comparison = PairedComparison(
        interval=interval, baseline_mean=float(np.mean(baseline)), entry_mean=float(np.mean(entry)), p_value=p,
        p_adjusted=p, correction="none", detectable=detectable, power=power, smallest_effect=float(smallest_effect),
        alpha=alpha, higher_is_better=higher_is_better, verdict="inconclusive", note=note)
    return _with_p(comparison, p, "none")


def compare_to_baseline(
    results: Mapping[str, Sequence[float]],
    *,
    baseline: str,
    higher_is_better: bool,
    smallest_effect: float,
    alpha: float = 0.05,
    method: IntervalMethod = "t",
    power: float = 0.8,
    correction: Literal["holm", "none"] = "holm",
) -> dict[str, PairedComparison]:
    """Every entry of one table (one metric) against ``baseline``, Holm-corrected across the entries.

    Args:
        results: Entry name → its metric per seed, every entry on the same seeds in the same order.
        baseline: The entry the others are compared with (a key of ``results``).
        higher_is_better: The metric's direction.
        smallest_effect: The smallest difference that matters, in the metric's units.
        alpha: Family-wise significance level of the table.
        method: Interval method (``t`` or ``bootstrap``).
        power: The power at which each ``detectable`` is computed.
        correction: ``holm`` (default) or ``none``.

    Returns:
        Entry name → its ``PairedComparison`` (``as_dict()`` for JSON), in ``results`` order, the
        baseline left out.

    Raises:
        StatisticsError: ``baseline`` is not an entry, or any entry fails ``paired_comparison``'s checks.
    """
    if baseline not in results:
        raise StatisticsError(f"baseline {baseline!r} is not an entry; entries: {', '.join(map(repr, results))}")
    if correction not in ("holm", "none"):
        raise StatisticsError(f"correction {correction!r} is not one of ['holm', 'none']")
    raw = {
        name: paired_comparison(results[baseline], values, higher_is_better=higher_is_better,
                                smallest_effect=smallest_effect, alpha=alpha, method=method, power=power, name=name)
        for name, values in results.items() if name != baseline
    }
    return raw if correction == "none" else holm_corrected(raw)


def holm_corrected(comparisons: Mapping[str, PairedComparison]) -> dict[str, PairedComparison]:
    """``comparisons`` re-decided at Holm-adjusted p-values across them (each keeps its raw ``p_value``).

    For a family of tests that ``compare_to_baseline`` cannot make in one call: comparisons against
    different baselines (each entry against its own reference), or on different metrics that one
    claim rests on together.
    """
    adjusted = holm([c.p_value for c in comparisons.values()])
    return {name: _with_p(c, p, "holm") for (name, c), p in zip(comparisons.items(), adjusted, strict=True)}
