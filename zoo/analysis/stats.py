"""Numbers over seeds, and whether a difference between two settings is bigger than the seeds' spread.

With two or three seeds there is no honest significance test; the rule here is the plain one the
notebooks state: a difference is *inside the seed spread* when it is no larger than the two settings'
standard deviations added together.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Difference:
    """``b - a`` over seeds.

    Attributes:
        delta: Mean of ``b`` minus mean of ``a``.
        spread: ``std(a) + std(b)``; NaN when either has a single seed.
        relative: ``delta / |mean(a)|`` (NaN when ``mean(a)`` is 0).
    """

    delta: float
    spread: float
    relative: float

    @property
    def spread_known(self) -> bool:
        return math.isfinite(self.spread)

    @property
    def inside_spread(self) -> bool:
        """``|delta| <= spread`` (False when the spread is unknown: one seed)."""
        return self.spread_known and abs(self.delta) <= self.spread

    def describe(self, unit: str = "") -> str:
        """E.g. ``+0.041 nats (1.2 %), inside the seed spread (±0.060)``."""
        where = ("inside" if self.inside_spread else "outside") + f" the seed spread (±{self.spread:.3f})" \
            if self.spread_known else "one seed, spread unknown"
        unit = f" {unit}" if unit else ""
        relative = f" ({100 * self.relative:+.1f} %)" if math.isfinite(self.relative) else ""
        return f"{self.delta:+.3f}{unit}{relative}, {where}"


def difference(a: Iterable[float] | SeedStats, b: Iterable[float] | SeedStats) -> Difference:
    """How ``b`` differs from ``a``, each a measurement over seeds."""
    a = a if isinstance(a, SeedStats) else seed_stats(a)
    b = b if isinstance(b, SeedStats) else seed_stats(b)
    delta = b.mean - a.mean
    return Difference(delta=delta, spread=a.std + b.std, relative=delta / abs(a.mean) if a.mean else math.nan)
