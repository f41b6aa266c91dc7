"""Scaling laws: fit ``L(N) = a·N^-α + c`` (Kaplan et al., 2020) and ``L(N, D) = E + A/N^α + B/D^β``
(Hoffmann et al., 2022), put intervals on them, and plot them.

``N`` is whatever scales — non-embedding parameters, training tokens or FLOPs; ``c`` is the loss no
size removes (the data's own entropy plus what the recipe leaves). The fit runs on ``N / N₀`` with
``N₀`` the geometric mean of the sizes, so ``a`` and ``α`` are of order one for the optimiser whatever
the units; ``a`` is reported in the units of ``N``.

- ``fit_power_law``: least squares for ``a·N^-α + c``.
- ``bootstrap_power_law``: percentile-bootstrap intervals on α, c and predictions at given sizes, by
  resampling the sizes (``scipy.stats.bootstrap`` with ``paired=True``: each resample draws (N, L) points
  with replacement and refits).
- ``fit_chinchilla``: Hoffmann et al.'s approach 3 — ``E + A/N^α + B/D^β`` over every (N, D, L) run,
  by minimising the Huber loss (δ = 10⁻³) of ``log L`` with L-BFGS from the best points of a grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats


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
    start, best = _grid_start(u, y)
    try:
        params, cov = optimize.curve_fit(law, u, y, p0=start, bounds=([0.0, 0.0, 0.0], [np.inf, 10.0, np.inf]),
                                         maxfev=20000)
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


@dataclass(frozen=True)
class PowerLawBootstrap:
    """Bootstrap intervals of a power-law fit, resampling the sizes.

    Attributes:
        fit: The fit to every point.
        alpha_low: Lower end of α's interval.
        alpha_high: Upper end of α's interval.
        c_low: Lower end of c's interval.
        c_high: Upper end of c's interval.
        predict_at: Sizes at which the law was asked to predict.
        prediction_low: Lower end of each prediction's interval.
        prediction_high: Upper end of each prediction's interval.
        confidence: Coverage of the intervals.
        n_resamples: Bootstrap resamples.
        method: How the intervals were made (``percentile bootstrap over the sizes``).
    """

    fit: PowerLaw
    alpha_low: float
    alpha_high: float
    c_low: float
    c_high: float
    predict_at: tuple[float, ...]
    prediction_low: tuple[float, ...]
    prediction_high: tuple[float, ...]
    confidence: float
    n_resamples: int
    method: str = "percentile bootstrap over the sizes"


def bootstrap_power_law(
    n: Sequence[float],
    loss: Sequence[float],
    *,
    predict_at: Sequence[float] = (),
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PowerLawBootstrap:
    """Intervals on α, c and the predicted loss at ``predict_at``, by resampling the sizes.

    Each resample draws ``len(n)`` (N, L) points with replacement, refits ``a·N^-α + c`` and records α,
    c and the fitted law at ``predict_at`` (``scipy.stats.bootstrap`` with ``paired=True``, percentile
    intervals: BCa's bias correction misbehaves at the bound α = 0 that the fit enforces). The points
    are the sizes, so the intervals reflect how much the law depends on which sizes were run — not the
    noise of each point around its own mean (average over seeds before calling).

    Raises:
        ValueError: What ``fit_power_law`` refuses, or fewer than 5 points (a resample of 4 draws too
            few distinct sizes to fit three parameters).
    """
    x, y = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    fit = fit_power_law(x, y)
    if len(x) < 5:
        raise ValueError(f"bootstrapping a power law needs at least 5 sizes, got {len(x)}")
    at = np.asarray(predict_at, dtype=float)

    def statistic(sizes: np.ndarray, losses: np.ndarray) -> np.ndarray:
        law = fit_power_law(sizes, losses)
        return np.concatenate([[law.alpha, law.c], law(at)])

    result = stats.bootstrap((x, y), statistic, paired=True, vectorized=False, n_resamples=n_resamples,
                             confidence_level=confidence, method="percentile",
                             random_state=np.random.default_rng(seed))
    low, high = (np.atleast_1d(end) for end in result.confidence_interval)
    return PowerLawBootstrap(fit=fit, alpha_low=float(low[0]), alpha_high=float(high[0]), c_low=float(low[1]),
                             c_high=float(high[1]), predict_at=tuple(float(v) for v in at),
                             prediction_low=tuple(float(v) for v in low[2:]),
                             prediction_high=tuple(float(v) for v in high[2:]), confidence=confidence,
                             n_resamples=n_resamples)


@dataclass(frozen=True)
class ChinchillaLaw:
    """``L(N, D) = E + A/N^α + B/D^β`` (Hoffmann et al., 2022, eq. 2).

    Attributes:
        E: Irreducible loss.
        A: Scale of the model-size term.
        B: Scale of the data term.
        alpha: Exponent of the model size ``N``.
        beta: Exponent of the training tokens ``D``.
        huber_loss: The minimised objective, summed over the points.
        points: How many (N, D, L) points the fit used.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    huber_loss: float
    points: int

    def __call__(self, n: Any, d: Any) -> Any:
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A * np.power(n, -self.alpha) + self.B * np.power(d, -self.beta)

    def compute_optimal_exponents(self) -> tuple[float, float]:
        """``(a, b)`` of ``N_opt ∝ C^a``, ``D_opt ∝ C^b`` at compute ``C ≈ 6·N·D``: β/(α+β), α/(α+β)."""
        total = self.alpha + self.beta
        return self.beta / total, self.alpha / total

    def __str__(self) -> str:
        return (f"L(N, D) = {self.E:.3f} + {self.A:.4g}/N^{self.alpha:.3f} + {self.B:.4g}/D^{self.beta:.3f}"
                f"  ({self.points} points)")


def _chinchilla_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                          delta: float) -> tuple[float, np.ndarray]:
    """Summed Huber loss of ``LSE(a − α log N, b − β log D, e) − log L`` and its gradient in θ = (a, b, e, α, β)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    lse = special.logsumexp(terms, axis=0)
    r = lse - log_loss
    loss = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    weights = np.exp(terms - lse) * np.clip(r, -delta, delta)  # softmax share of each term × Huber slope
    grad = np.array([weights[0].sum(), weights[1].sum(), weights[2].sum(), -(weights[0] * log_n).sum(),
                     -(weights[1] * log_d).sum()])
    return float(loss), grad


def _chinchilla_grid_values(grid: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                            delta: float) -> np.ndarray:
    """The objective of ``_chinchilla_objective`` at every row θ of ``grid``, at once."""
    a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(grid), len(log_n)))])
    r = np.abs(special.logsumexp(terms, axis=0) - log_loss)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)


def fit_chinchilla(
    n: Sequence[float], d: Sequence[float], loss: Sequence[float], *, huber_delta: float = 1e-3, starts: int = 8
) -> ChinchillaLaw:
    """Hoffmann et al.'s approach 3: fit ``E + A/N^α + B/D^β`` to every run's (N, D, L).

    As in the paper (appendix D.2): minimise the Huber loss (``huber_delta``) of
    ``log L̂ − log L`` with ``log L̂ = LSE(a − α·log N, b − β·log D, e)`` (``A = eᵃ``, ``B = eᵇ``, ``E = eᵉ``)
    by L-BFGS, starting from a grid — α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}
    — here from the ``starts`` grid points with the lowest objective rather than all 4,500.

    Args:
        n: Model size of each run (non-embedding parameters).
        d: Training tokens of each run.
        loss: Its loss.

    Raises:
        ValueError: Fewer than 6 points (five parameters), mismatched lengths, non-positive sizes or
            token counts, non-positive or non-finite losses.
    """
    sizes, tokens, y = (np.asarray(v, dtype=float) for v in (n, d, loss))
    if not sizes.shape == tokens.shape == y.shape or sizes.ndim != 1:
        raise ValueError(f"n, d and loss must be 1-d of equal length, got shapes {sizes.shape}, {tokens.shape}, "
                         f"{y.shape}")
    if len(y) < 6:
        raise ValueError(f"L(N, D) = E + A/N^α + B/D^β has 5 parameters; fit it to at least 6 points, got {len(y)}")
    if (sizes <= 0).any() or (tokens <= 0).any() or not np.isfinite(sizes).all() or not np.isfinite(tokens).all():
        raise ValueError("sizes and token counts must be positive and finite")
    if (y <= 0).any() or not np.isfinite(y).all():
        raise ValueError("losses must be positive and finite (the fit is in log L)")
    log_n, log_d, log_loss = np.log(sizes), np.log(tokens), np.log(y)
    grid = np.array(np.meshgrid(np.arange(0, 26, 5.0), np.arange(0, 26, 5.0), np.arange(-1, 1.01, 0.5),
                                np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5), indexing="ij")).reshape(5, -1).T
    values = _chinchilla_grid_values(grid, log_n, log_d, log_loss, huber_delta)
    best_theta, best = None, math.inf
    for theta in grid[np.argsort(values, kind="stable")[:starts]]:
        # Tight tolerances: scipy's default ftol stops at a relative change of 2e-9, which on an objective
        # this small (Huber with δ = 10⁻³) can leave the fit far from the minimum.
        result = optimize.minimize(_chinchilla_objective, theta, args=(log_n, log_d, log_loss, huber_delta),
                                   jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if result.fun < best:
            best_theta, best = result.x, float(result.fun)
    a, b, e, alpha, beta = (float(v) for v in best_theta)
    return ChinchillaLaw(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta, huber_loss=best,
                         points=len(y))


def _grid_start(u: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float, float], float]:
    """The best ``(a, α, c)`` over a grid of 400 α's, each with ``min ‖a·u^-α + c − y‖²`` over ``a, c ≥ 0``,
    and its squared error (all α's at once: a bootstrap refits thousands of times)."""
    alphas = np.geomspace(1e-3, 10.0, 400)
    columns = np.power(u[None, :], -alphas[:, None])  # (alphas, points)
    x_mean, y_mean = columns.mean(axis=1), float(y.mean())
    x_centred = columns - x_mean[:, None]
    variance = (x_centred**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = np.where(variance > 1e-12 * np.maximum(1.0, x_mean**2), (x_centred @ (y - y_mean)) / variance, -1.0)
    c_free = y_mean - a_free * x_mean
    # Where the unconstrained solution leaves a, c >= 0, it is the answer; else the better edge.
    a_only = np.maximum((columns @ y) / (columns**2).sum(axis=1), 0.0)
    c_only = max(y_mean, 0.0)
    sse_a_only = ((a_only[:, None] * columns - y) ** 2).sum(axis=1)
    sse_c_only = float(((c_only - y) ** 2).sum())
    free = (a_free >= 0) & (c_free >= 0)
    a = np.where(free, a_free, np.where(sse_a_only <= sse_c_only, a_only, 0.0))
    c = np.where(free, c_free, np.where(sse_a_only <= sse_c_only, 0.0, c_only))
    sse = ((a[:, None] * columns + c[:, None] - y) ** 2).sum(axis=1)
    i = int(np.argmin(sse))
    flat = float(((y - y_mean) ** 2).sum())
    if sse[i] >= flat:  # no α beats a constant
        return (0.0, 0.0, y_mean), flat
    return (float(a[i]), float(alphas[i]), float(c[i])), float(sse[i])


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
