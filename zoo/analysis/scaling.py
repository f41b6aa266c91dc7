"""Scaling laws: fit ``L(N) = a·N^-α + c`` (Kaplan et al., 2020; Hoffmann et al., 2022) and plot it.

``N`` is whatever scales — non-embedding parameters, training tokens or FLOPs; ``c`` is the loss no
size removes (the data's own entropy plus what the recipe leaves). The fit runs on ``N / N₀`` with
``N₀`` the geometric mean of the sizes, so ``a`` and ``α`` are of order one for the optimiser whatever
the units; ``a`` is reported in the units of ``N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """``L(N) = a·N^-α + c`` with its fit quality.

    Attributes:
        a: Scale, in the units of ``N``.
        alpha: Exponent α (> 0: loss falls with size).
        c: Irreducible loss.
        r_squared: 1 − residual / total sum of squares of the fitted losses (1 = perfect).
        alpha_stderr: Standard error of α from the fit's covariance (nan when it is undetermined).
    """

    a: float
    alpha: float
    c: float
    r_squared: float
    alpha_stderr: float = math.nan

    def __call__(self, n: Any) -> Any:
        return self.a * np.power(np.asarray(n, dtype=float), -self.alpha) + self.c

    def __str__(self) -> str:
        return f"L(N) = {self.a:.3g}·N^-{self.alpha:.3f} + {self.c:.3f}  (R² = {self.r_squared:.3f})"


def fit_power_law(n: Sequence[float], loss: Sequence[float]) -> PowerLaw:
    """Least-squares fit of ``loss ≈ a·n^-α + c`` with ``a, α, c ≥ 0`` (scipy's ``curve_fit``).

    Args:
        n: Sizes (parameters, tokens or FLOPs), positive.
        loss: Loss at each size.

    Raises:
        ValueError: Fewer than four points (three parameters leave nothing to judge the fit by),
            mismatched lengths, non-positive sizes or non-finite losses.
    """
    from scipy.optimize import curve_fit

    x, y = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"n and loss must be 1-d of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 4:
        raise ValueError(f"a power law with an offset has 3 parameters; fit it to at least 4 points, got {len(x)}")
    if (x <= 0).any() or not np.isfinite(x).all() or not np.isfinite(y).all():
        raise ValueError("sizes must be positive and finite, losses finite")
    n0 = float(np.exp(np.log(x).mean()))
    u = x / n0

    def law(u: np.ndarray, a: float, alpha: float, c: float) -> np.ndarray:
        return a * np.power(u, -alpha) + c

    # Given α the law is linear in (a, c): a grid over α with least squares for the rest always gives
    # a sound start, and the answer should curve_fit not converge (noisy, nearly flat losses).
    start, best = (0.0, 0.0, float(y.mean())), float(((y - y.mean()) ** 2).sum())
    for alpha in np.geomspace(1e-3, 10.0, 400):
        a, c = _nonnegative_lstsq(np.power(u, -alpha), y)
        sse = float(((y - law(u, a, alpha, c)) ** 2).sum())
        if sse < best:
            start, best = (a, alpha, c), sse
    try:
        params, cov = curve_fit(law, u, y, p0=start, bounds=([0.0, 0.0, 0.0], [np.inf, 10.0, np.inf]), maxfev=20000)
    except RuntimeError:
        params, cov = np.array(start), np.full((3, 3), np.nan)
    if ((y - law(u, *params)) ** 2).sum() > best:
        params, cov = np.array(start), np.full((3, 3), np.nan)
    a_u, alpha, c = (float(p) for p in params)
    residual = float(((y - law(u, *params)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - residual / total if total > 0 else 1.0
    alpha_stderr = float(np.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1]) else math.nan
    return PowerLaw(a=a_u * n0**alpha, alpha=alpha, c=c, r_squared=r_squared, alpha_stderr=alpha_stderr)


def _nonnegative_lstsq(column: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``min ‖a·column + c - y‖²`` over ``a, c >= 0``: the unconstrained solution, else the best edge."""
    (a, c), *_ = np.linalg.lstsq(np.stack([column, np.ones_like(column)], axis=1), y, rcond=None)
    if a >= 0 and c >= 0:
        return float(a), float(c)
    a_only = max(float(column @ y / (column @ column)), 0.0)
    c_only = max(float(y.mean()), 0.0)
    if ((a_only * column - y) ** 2).sum() <= ((c_only - y) ** 2).sum():
        return a_only, 0.0
    return 0.0, c_only


def plot_power_law(
    ax: Any,
    n: Sequence[float],
    loss: Sequence[float],
    fit: PowerLaw | None = None,
    *,
    errors: Sequence[float] | None = None,
    label: str = "measured",
    xlabel: str = "non-embedding parameters N",
    ylabel: str = "validation loss (nats)",
) -> PowerLaw:
    """Points (with error bars when ``errors`` are given) and the fitted curve on log-log axes of ``ax``.

    Fits when ``fit`` is None and returns the fit. The dashed line is ``a·N^-α + c``; the dotted one the
    irreducible loss ``c``.
    """
    fit = fit or fit_power_law(n, loss)
    x = np.asarray(n, dtype=float)
    ax.errorbar(x, loss, yerr=errors, fmt="o", capsize=3, label=label)
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
    ax.plot(grid, fit(grid), "--", label=f"fit: {fit.a:.3g}·N^-{fit.alpha:.2f} + {fit.c:.2f}")
    if fit.c > 0:
        ax.axhline(fit.c, linestyle=":", color="gray", label=f"c = {fit.c:.2f}")
    from matplotlib.ticker import FormatStrFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    # Losses span less than a decade: plain numbers on the y axis read better than powers of ten.
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return fit
