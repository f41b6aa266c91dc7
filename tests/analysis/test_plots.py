"""The plot rules, checked on real matplotlib figures: bars from zero, labelled axes, one colour per
variant, 95 % intervals as error bars, chance lines, and the paired-difference plot's band."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from scipy import stats  # noqa: E402

from zoo.analysis.plots import (  # noqa: E402
    COLORS,
    PALETTE,
    VariantColors,
    mean_interval,
    plot_bars,
    plot_curves,
    plot_paired_differences,
    variant_color,
)
from zoo.analysis.stats import compare_to_baseline  # noqa: E402
from zoo.analysis.training import History  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def history(losses: list[float]) -> History:
    steps = list(range(10, 10 * len(losses) + 1, 10))
    return History(steps=steps, train_loss=losses, val_steps=steps, val_loss=losses)


LOSSES = {"layernorm": [4.42, 4.18, 4.66], "rmsnorm": [4.31, 4.25, 4.37], "none": [4.88, 4.79, 4.96]}


def test_bars_start_at_zero_even_when_the_gaps_are_small(ax):
    plot_bars(ax, LOSSES, ylabel="validation loss (nats)", lower_is_better=True)
    low, high = ax.get_ylim()
    assert low == 0.0 and high > max(max(v) for v in LOSSES.values())
    assert ax.get_ylabel() == "validation loss (nats) (lower is better)"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(LOSSES)


def test_negative_bars_keep_zero_on_the_axis(ax):
    plot_bars(ax, {"a": [-0.2, -0.3], "b": [0.1, 0.2]}, ylabel="Δ loss (nats)")
    low, high = ax.get_ylim()
    assert low < -0.3 and high > 0.2


def test_a_broken_axis_is_marked(ax):
    plot_bars(ax, LOSSES, ylabel="validation loss (nats)", bottom=4.0)
    assert ax.get_ylim()[0] == 4.0
    assert "axis broken at 4" in ax.get_ylabel()
    strokes = [line for line in ax.get_lines() if line.get_transform() == ax.transAxes]
    assert len(strokes) == 2  # the break mark on the y axis


def test_error_bars_are_the_95_percent_interval_of_the_mean(ax):
    plot_bars(ax, LOSSES, ylabel="validation loss (nats)")
    (container,) = ax.containers[1:]  # [0] is the bars
    segments = container.lines[2][0].get_segments()
    for values, segment in zip(LOSSES.values(), segments, strict=True):
        half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
        assert segment[1][1] - segment[0][1] == pytest.approx(2 * half)
        assert (segment[1][1] + segment[0][1]) / 2 == pytest.approx(np.mean(values))
    assert mean_interval([1.0]) == 0.0
    assert any("95 % interval" in t.get_text() for t in ax.get_legend().get_texts())


def test_chance_line(ax):
    plot_bars(ax, {"bert": [0.66, 0.64, 0.7], "gpt": [0.6, 0.61, 0.58]}, ylabel="accuracy (fraction)", chance=0.2)
    chance = [line for line in ax.get_lines() if list(line.get_ydata()) == [0.2, 0.2]]
    assert len(chance) == 1 and chance[0].get_linestyle() == "--"
    assert "chance (0.2)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_labels_are_required(ax):
    with pytest.raises(ValueError, match="unit"):
        plot_bars(ax, LOSSES, ylabel=" ")


def test_one_colour_per_variant_across_figures():
    colors = VariantColors(["MHA"])
    assert colors("MHA") == PALETTE[0] and colors("GQA-2") == PALETTE[1] and colors["MHA"] == PALETTE[0]
    first, second = plt.subplots()[1], plt.subplots()[1]
    plot_bars(first, {"GQA-2": [1.0, 1.1], "MHA": [1.2, 1.3]}, ylabel="loss (nats)", colors=colors)
    plot_curves(second, {"MHA": [history([3.0, 2.0])], "MQA": [history([3.1, 2.1])], "GQA-2": [history([3, 2.2])]},
                colors=colors)
    bars = {tick.get_text(): to_hex(patch.get_facecolor()) for tick, patch in
            zip(first.get_xticklabels(), first.patches, strict=True)}
    lines = {line.get_label(): to_hex(line.get_color()) for line in second.get_lines()}
    assert bars == {"GQA-2": PALETTE[1], "MHA": PALETTE[0]}
    assert lines == {"MHA": PALETTE[0], "MQA": PALETTE[2], "GQA-2": PALETTE[1]}
    assert colors.mapping() == {"MHA": PALETTE[0], "GQA-2": PALETTE[1], "MQA": PALETTE[2]}
    assert len(set(VariantColors([str(i) for i in range(len(PALETTE))]).mapping().values())) == len(PALETTE)
    assert variant_color("a name only this test uses") == COLORS("a name only this test uses")
    plt.close("all")


def test_curves_have_labelled_axes(ax):
    plot_curves(ax, {"learned": [history([4.0, 3.5]), history([4.1, 3.6])]}, curve="val")
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "validation loss (nats)"
    assert ax.get_legend().get_texts()[0].get_text() == "learned (2 seeds)"


def test_paired_difference_plot(ax):
    base = [2.31, 2.45, 2.28, 2.39, 2.36]
    table = compare_to_baseline(
        {"baseline": base, "renamed": list(base), "broken": [v + 0.4 for v in base],
         "qk-norm": [2.30, 2.41, 2.27, 2.37, 2.33]},
        baseline="baseline", higher_is_better=False, smallest_effect=0.005)
    plot_paired_differences(ax, table, metric="test bits per byte", unit="bits/byte", baseline="baseline")
    (band,) = ax.patches
    # axvspan returns a Rectangle in newer matplotlib, a Polygon before 3.9.
    xs = [band.get_x(), band.get_x() + band.get_width()] if hasattr(band, "get_width") else band.get_xy()[:, 0]
    assert min(xs) == pytest.approx(-0.005) and max(xs) == pytest.approx(0.005)
    assert "← better" in ax.get_xlabel() and "bits/byte" in ax.get_xlabel() and ax.get_ylabel()
    assert "shaded: |Δ| < 0.005 bits/byte" in ax.get_title()
    rows = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    assert sorted(rows, key=rows.get, reverse=True) == ["renamed", "broken", "qk-norm"]  # first entry on top
    verdicts = [t.get_text() for t in ax.texts]
    assert verdicts == [table[n].verdict for n in table] and "worse" in verdicts
    low, high = ax.get_xlim()
    assert low < 0 < high and high >= table["broken"].interval.high
    interval_lines = [c.lines[2][0].get_segments()[0] for c in ax.containers]
    broken = table["broken"].interval
    assert interval_lines[1][:, 0] == pytest.approx([broken.low, broken.high])


def test_timings_paired_by_round_say_so(ax):
    times = {"layernorm": [5.1, 5.3, 5.0], "rmsnorm": [9.8, 10.4, 10.1]}
    plot_bars(ax, times, ylabel="µs per call", point="round")
    assert "one round" in [t.get_text() for t in ax.get_legend().get_texts()]
    table = compare_to_baseline(times, baseline="layernorm", higher_is_better=False, smallest_effect=0.25)
    ax.clear()
    plot_paired_differences(ax, table, metric="time", unit="µs", baseline="layernorm", pairs="rounds")
    assert "3 rounds" in ax.get_title() and "by round" in ax.get_ylabel()
    assert "(95 % t-interval, 3 rounds)" in table["rmsnorm"].describe("µs", pairs="rounds")
