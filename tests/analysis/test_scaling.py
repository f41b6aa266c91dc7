"""The power-law fit recovers known laws; it refuses what it cannot fit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zoo.analysis import (  # noqa: E402
    ChinchillaLaw,
    PowerLawBootstrap,
    bootstrap_power_law,
    fit_chinchilla,
    fit_power_law,
    plot_power_law,
)

SIZES = np.array([2e4, 5e4, 1e5, 3e5, 1e6, 3e6])


@pytest.mark.parametrize("a,alpha,c", [(40.0, 0.3, 1.5), (3e3, 0.7, 0.0), (8.0, 0.076, 1.0)])
def test_recovers_an_exact_law(a, alpha, c):
    fit = fit_power_law(SIZES, a * SIZES**-alpha + c)
    assert fit.alpha == pytest.approx(alpha, rel=1e-3)
    assert fit.a == pytest.approx(a, rel=1e-2)
    assert fit.c == pytest.approx(c, abs=1e-3)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit(SIZES[0]) == pytest.approx(a * SIZES[0] ** -alpha + c, rel=1e-4)


def test_noisy_law_and_a_flat_one():
    rng = np.random.default_rng(0)
    loss = 40.0 * SIZES**-0.3 + 1.5 + rng.normal(0, 0.01, len(SIZES))
    fit = fit_power_law(SIZES, loss)
    assert 0.2 < fit.alpha < 0.4 and fit.r_squared > 0.99
    flat = fit_power_law(SIZES, np.full(len(SIZES), 2.0) + rng.normal(0, 0.01, len(SIZES)))
    assert flat.r_squared < 0.9  # no law to find: the fit says so


def test_losses_that_rise_with_size_give_a_flat_fit_not_an_error():
    fit = fit_power_law(SIZES, np.linspace(2.0, 2.5, len(SIZES)))
    assert fit.a == pytest.approx(0.0, abs=1e-9) and fit.r_squared == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(fit.alpha) and fit.c == pytest.approx(2.25)


def test_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="at least 4"):
        fit_power_law([1e3, 1e4, 1e5], [3.0, 2.0, 1.5])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0, 1e4, 1e5, 1e6], [3.0, 2.0, 1.5, 1.4])
    with pytest.raises(ValueError, match="equal length"):
        fit_power_law([1e3, 1e4, 1e5, 1e6], [3.0, 2.0])


def test_plot_draws_points_curve_and_floor_on_log_axes():
    fig, ax = plt.subplots()
    fit = plot_power_law(ax, SIZES, 40.0 * SIZES**-0.3 + 1.5, errors=[0.01] * len(SIZES))
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.lines) >= 2 and fit.c == pytest.approx(1.5, abs=1e-3)
    plt.close(fig)


def test_bootstrap_puts_intervals_on_alpha_and_on_a_prediction():
    rng = np.random.default_rng(0)
    sizes = np.geomspace(2e3, 6e5, 10)
    loss = 6.0 * sizes**-0.2 + 2.0 + rng.normal(0, 0.005, len(sizes))
    boot = bootstrap_power_law(sizes, loss, predict_at=[1e6, 1e7], n_resamples=400)
    assert isinstance(boot, PowerLawBootstrap) and boot.n_resamples == 400 and "sizes" in boot.method
    assert 0 < boot.alpha_low < 0.2 < boot.alpha_high < 0.4  # excludes 0, covers the truth
    assert boot.alpha_low <= boot.fit.alpha <= boot.alpha_high and boot.c_low <= boot.fit.c <= boot.c_high
    truth = 6.0 * np.array([1e6, 1e7]) ** -0.2 + 2.0
    assert all(lo <= t <= hi for lo, t, hi in zip(boot.prediction_low, truth, boot.prediction_high, strict=True))
    # Extrapolating further is less certain.
    assert boot.prediction_high[1] - boot.prediction_low[1] > boot.prediction_high[0] - boot.prediction_low[0]
    again = bootstrap_power_law(sizes, loss, predict_at=[1e6, 1e7], n_resamples=400)
    assert again == boot  # a fixed generator: the same intervals every time


def test_bootstrap_of_a_flat_loss_does_not_exclude_zero():
    rng = np.random.default_rng(1)
    sizes = np.geomspace(2e3, 6e5, 8)
    boot = bootstrap_power_law(sizes, 3.0 + rng.normal(0, 0.01, len(sizes)), n_resamples=300)
    assert boot.alpha_low == pytest.approx(0.0, abs=1e-6) or boot.fit.a * sizes[0] ** -boot.alpha_low < 0.05
    with pytest.raises(ValueError, match="at least 5"):
        bootstrap_power_law(sizes[:4], [4.0, 3.5, 3.2, 3.1])


# Hoffmann et al. (2022), eq. 10: their approach-3 fit to the Chinchilla runs.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_chinchilla_fit_recovers_the_published_law():
    n, d = (grid.ravel() for grid in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 5)))
    truth = ChinchillaLaw(**CHINCHILLA, huber_loss=0.0, points=len(n))
    fit = fit_chinchilla(n, d, truth(n, d), starts=2)
    for key, value in CHINCHILLA.items():
        assert getattr(fit, key) == pytest.approx(value, rel=1e-2), key
    assert fit.points == 30 and fit.huber_loss < 1e-8
    # The paper's compute-optimal split from these exponents: N_opt ∝ C^0.45, D_opt ∝ C^0.55 (their 0.46 / 0.54).
    a, b = fit.compute_optimal_exponents()
    assert a == pytest.approx(0.28 / 0.62, abs=0.01) and a + b == pytest.approx(1.0)


def test_chinchilla_fit_with_noise_and_bad_input():
    rng = np.random.default_rng(0)
    n, d = (grid.ravel() for grid in np.meshgrid(np.geomspace(2e3, 6e5, 6), np.geomspace(1e5, 2e6, 6)))
    loss = (1.5 + 30 * n**-0.3 + 60 * d**-0.35) * np.exp(rng.normal(0, 0.003, len(n)))
    fit = fit_chinchilla(n, d, loss, starts=2)
    assert fit.alpha == pytest.approx(0.3, abs=0.08) and fit.beta == pytest.approx(0.35, abs=0.08)
    assert np.abs(np.log(fit(n, d)) - np.log(loss)).max() < 0.02
    with pytest.raises(ValueError, match="at least 6"):
        fit_chinchilla(n[:5], d[:5], loss[:5])
    with pytest.raises(ValueError, match="positive"):
        fit_chinchilla(np.r_[0.0, n[1:]], d, loss)
    with pytest.raises(ValueError, match="equal length"):
        fit_chinchilla(n, d[:-1], loss)
