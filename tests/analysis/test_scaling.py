"""The power-law fit recovers known laws; it refuses what it cannot fit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zoo.analysis import fit_power_law, plot_power_law  # noqa: E402

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
