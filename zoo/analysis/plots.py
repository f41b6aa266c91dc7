"""The plots the experiments share, drawn so that they do not mislead.

- **One colour per variant** throughout a notebook: ``variant_color(name)`` gives each name a colour the
  first time it is asked and the same colour ever after (``COLORS``, one mapping per process — a
  notebook's kernel), and every function here colours by it.
- **Labelled axes with units**: a y label is required (and says which direction is better when told).
- **Bars from zero**: ``plot_bars`` starts its axis at 0, or at ``bottom`` with a visible break mark and
  "axis broken" in its label — never a silent zoom that turns a 1 % gap into a tall one.
- **Chance lines** where a metric has a chance level (``chance=``).
- **Error bars are 95 % intervals** of the mean over seeds (Student's t), and each seed is a dot; the
  bar is the mean, so text quoting the figure should quote means.
- ``plot_paired_differences``: each entry's paired difference to the baseline with its interval, the
  band of differences too small to matter shaded, the verdict written beside it.

Each draws onto a matplotlib ``Axes`` it is given (or a figure it returns), so a notebook lays out its
own figure. matplotlib is imported by the caller; these functions only call methods on what they get.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

from zoo.analysis.stats import PairedComparison
from zoo.analysis.training import History

Curve = Literal["val", "train"]

# matplotlib's tab10, then the darker/lighter halves of tab20 that tab10 lacks: 20 distinguishable colours.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)
CHANCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.0}


class VariantColors:
    """Variant name → colour: a name keeps the colour it was first given, in every later figure.

    Names are given colours from ``palette`` in the order they are first asked for (after ``names``,
    which fixes an order up front); past the palette's length colours repeat.
    """

    def __init__(self, names: Iterable[str] = (), palette: Sequence[str] = PALETTE) -> None:
        self.palette = tuple(palette)
        self._colors: dict[str, str] = {}
        for name in names:
            self(name)

    def __call__(self, name: str) -> str:
        if name not in self._colors:
            self._colors[name] = self.palette[len(self._colors) % len(self.palette)]
        return self._colors[name]

    __getitem__ = __call__

    def mapping(self) -> dict[str, str]:
        """The colours given so far."""
        return dict(self._colors)


COLORS = VariantColors()


def variant_color(name: str) -> str:
    """The colour of ``name`` in this process's ``COLORS`` (the same in every figure of a notebook)."""
    return COLORS(name)


def _direction(lower_is_better: bool | None) -> str:
    return {True: " (lower is better)", False: " (higher is better)", None: ""}[lower_is_better]


def _require_label(label: str, what: str) -> None:
    if not label or not label.strip():
        raise ValueError(f"{what} must name the quantity and its unit, e.g. 'validation loss (nats)'")


def plot_curves(
    ax: Any,
    runs: Mapping[str, Sequence[History]],
    *,
    curve: Curve = "val",
    smooth: int = 20,
    ylabel: str | None = None,
    xlabel: str = "training step",
    logy: bool = False,
    colors: VariantColors | None = None,
) -> None:
    """One line per setting: the mean over its seeds' runs, with a band from the lowest to the highest seed.

    Args:
        runs: Setting name → its runs (one per seed), all with the same steps.
        curve: ``val`` (validation loss at its steps) or ``train`` (training loss, trailing mean over
            ``smooth`` steps).
        ylabel: Defaults to the loss in nats.
        colors: The name → colour mapping (default: this process's ``COLORS``).
    """
    colors = colors or COLORS
    for name, histories in runs.items():
        if curve == "val":
            steps = histories[0].val_steps
            values = [h.val_loss for h in histories]
        else:
            steps = histories[0].steps
            values = [h.smoothed_train_loss(smooth) for h in histories]
        length = min(len(v) for v in values)  # a diverged run stops early
        array = np.array([v[:length] for v in values], dtype=float)
        steps = steps[:length]
        label = f"{name} ({len(histories)} seeds)" if len(histories) > 1 else name
        ax.plot(steps, array.mean(axis=0), label=label, color=colors(name))
        if len(histories) > 1:
            ax.fill_between(steps, array.min(axis=0), array.max(axis=0), color=colors(name), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or ("validation loss (nats)" if curve == "val" else "training loss (nats)"))
    if logy:
        ax.set_yscale("log")
    ax.legend()


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t ``confidence`` interval of the mean of ``values`` (0 for one value)."""
    if len(values) < 2:
        return 0.0
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * sem


def _mark_broken_axis(ax: Any) -> None:
    """Two short diagonal strokes across the bottom of the y axis: the axis does not start at 0."""
    kwargs = {"transform": ax.transAxes, "color": "black", "clip_on": False, "linewidth": 1.0}
    for dy in (-0.012, 0.012):
        ax.plot([-0.02, 0.02], [0.02 + dy - 0.012, 0.02 + dy + 0.012], **kwargs)


def plot_bars(
    ax: Any,
    values: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str | None = None,
    lower_is_better: bool | None = None,
    fmt: str = "{:.3f}",
    chance: float | None = None,
    bottom: float = 0.0,
    confidence: float = 0.95,
    colors: VariantColors | None = None,
    point: str = "seed",
) -> None:
    """A bar per setting at the mean of its seeds, from zero, with a ``confidence`` interval and each seed
    as a dot; the mean is written on the bar.

    Args:
        values: Setting name → its value per seed.
        ylabel: The quantity and its unit (required).
        lower_is_better: Adds "(lower is better)" / "(higher is better)" to the label.
        chance: Draws the chance level as a dashed line.
        bottom: Where the y axis starts; anything but 0 breaks the axis, which is then marked on the
            axis and in its label.
        confidence: Coverage of the error bars (Student-t interval of the mean; none for one seed).
        colors: The name → colour mapping (default: this process's ``COLORS``).
        point: What one value is, for the legend of the dots (``seed``; ``round`` for interleaved timings).
    """
    _require_label(ylabel, "plot_bars' ylabel")
    colors = colors or COLORS
    names = list(values)
    means = [float(np.mean(values[n])) for n in names]
    errors = [mean_interval(values[n], confidence) for n in names]
    x = np.arange(len(names))
    seeds = max(len(values[n]) for n in names)
    bars = ax.bar(x, means, color=[colors(n) for n in names], alpha=0.8)
    if any(errors):
        ax.errorbar(x, means, yerr=errors, fmt="none", ecolor="black", capsize=4,
                    label=f"{100 * confidence:.0f} % interval of the mean")
    for i, name in enumerate(names):
        ax.scatter(np.full(len(values[name]), x[i]), values[name], color="black", s=10, zorder=3,
                   label=f"one {point}" if i == 0 and seeds > 1 else None)
    ax.bar_label(bars, labels=[fmt.format(m) for m in means], label_type="center", fontsize=8)  # clear of the whiskers
    ax.set_xticks(x, names, rotation=20 if max(len(n) for n in names) > 8 else 0)
    broken = bottom != 0
    ax.set_ylabel(ylabel + _direction(lower_is_better) + (f" — axis broken at {bottom:g}" if broken else ""))
    if title:
        ax.set_title(title)
    if chance is not None:
        ax.axhline(chance, **CHANCE_STYLE, label=f"chance ({chance:g})")
    everything = [v for n in names for v in values[n]] + [m + e for m, e in zip(means, errors, strict=True)]
    high = max(everything + ([chance] if chance is not None else []))
    low = min(everything + [0.0])
    legend = any(errors) or chance is not None
    top = max(high, 0.0) * (1.3 if legend else 1.08) or 1.0  # room for the legend above the bars
    ax.set_ylim(bottom if broken else min(low * 1.12, 0.0), top)
    if broken:
        _mark_broken_axis(ax)
    if legend:
        ax.legend(fontsize=7, loc="best")


def plot_paired_differences(
    ax: Any,
    comparisons: Mapping[str, PairedComparison],
    *,
    metric: str,
    unit: str,
    baseline: str,
    colors: VariantColors | None = None,
    pairs: str = "seeds",
) -> None:
    """Each entry's paired difference to ``baseline`` with its interval, the ±smallest-effect band shaded.

    One row per entry: a dot at the mean of ``entry - baseline`` over seeds, a bar over its interval,
    the verdict written at the right. Differences inside the shaded band are too small to matter; the
    x label says which side is better.

    Args:
        comparisons: Entry name → its ``PairedComparison`` (``compare_to_baseline``'s result).
        metric: What was measured, e.g. "test bits per byte".
        unit: Its unit, e.g. "bits/byte".
        baseline: The baseline's name, for the axis label.
        colors: The name → colour mapping (default: this process's ``COLORS``).
        pairs: What the values were paired by (``seeds``; ``rounds`` for interleaved timings).
    """
    _require_label(metric, "plot_paired_differences' metric")
    _require_label(unit, "plot_paired_differences' unit")
    if not comparisons:
        raise ValueError("plot_paired_differences needs at least one comparison")
    colors = colors or COLORS
    names = list(comparisons)
    first = comparisons[names[0]]
    smallest = first.smallest_effect
    if smallest > 0:
        ax.axvspan(-smallest, smallest, color="0.85", zorder=0)
    ax.axvline(0.0, color="0.3", linewidth=1.0)
    y = np.arange(len(names))[::-1]  # the first entry on top
    for row, name in zip(y, names, strict=True):
        c = comparisons[name]
        i = c.interval
        ax.errorbar([i.mean], [row], xerr=[[i.mean - i.low], [i.high - i.mean]], fmt="o", color=colors(name),
                    capsize=4)
        ax.annotate(c.verdict, (1.01, row), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.set_yticks(y, names)
    better = "higher" if first.higher_is_better else "lower"
    arrow = "better →" if first.higher_is_better else "← better"
    ax.set_xlabel(f"{metric}: entry − {baseline} ({unit}); {arrow} ({better} is better)")
    ax.set_ylabel(f"entry (paired with {baseline} by {pairs.rstrip('s')})")
    band = f"; shaded: |Δ| < {smallest:g} {unit}, too small to matter" if smallest > 0 else ""
    ax.set_title(f"{100 * first.interval.confidence:.0f} % {first.interval.method}-intervals over "
                 f"{first.interval.n} {pairs}, p {'Holm-corrected' if first.correction == 'holm' else 'uncorrected'}"
                 + band, fontsize=9)
    reach = max(max(abs(comparisons[n].interval.low), abs(comparisons[n].interval.high)) for n in names)
    reach = max(reach, smallest) * 1.15 or 1.0
    ax.set_xlim(-reach, reach)


def plot_attention(
    weights: Any,
    tokens: Sequence[str],
    *,
    title: str = "",
    key_tokens: Sequence[str] | None = None,
    max_heads: int = 8,
) -> Any:
    """Heatmaps of one layer's heads: ``weights`` ``(h, t, s)`` (one sequence of a captured map).

    Rows are queries (``tokens``), columns keys (``key_tokens``, default the same). Returns the figure.
    """
    import matplotlib.pyplot as plt

    weights = np.asarray(weights)
    heads = min(weights.shape[0], max_heads)
    key_tokens = list(key_tokens) if key_tokens is not None else list(tokens)
    size = 0.22 * max(len(tokens), len(key_tokens)) + 1.0
    fig, axes = plt.subplots(1, heads, figsize=(size * heads, size + 0.6), squeeze=False)
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(len(key_tokens)), key_tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens if h == 0 else [""] * len(tokens), fontsize=7)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.02, pad=0.01, label="attention weight")
    if title:
        fig.suptitle(title)
    return fig
