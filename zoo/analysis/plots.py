"""The plots the experiments share: loss curves over seeds, bars with seed error bars, attention heatmaps.

Each draws onto a matplotlib ``Axes`` it is given (or a figure it returns), so a notebook lays out its
own figure. matplotlib is imported by the caller; these functions only call methods on what they get.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from zoo.analysis.training import History

Curve = Literal["val", "train"]


def plot_curves(
    ax: Any,
    runs: Mapping[str, Sequence[History]],
    *,
    curve: Curve = "val",
    smooth: int = 20,
    ylabel: str | None = None,
    logy: bool = False,
) -> None:
    """One line per setting: the mean over its seeds' runs, with a band from the lowest to the highest seed.

    Args:
        runs: Setting name → its runs (one per seed), all with the same steps.
        curve: ``val`` (validation loss at its steps) or ``train`` (training loss, trailing mean over
            ``smooth`` steps).
    """
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
        (line,) = ax.plot(steps, array.mean(axis=0), label=label)
        if len(histories) > 1:
            ax.fill_between(steps, array.min(axis=0), array.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or ("validation loss (nats)" if curve == "val" else "training loss (nats)"))
    if logy:
        ax.set_yscale("log")
    ax.legend()


def plot_bars(
    ax: Any,
    values: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str | None = None,
    lower_is_better: bool | None = None,
    fmt: str = "{:.3f}",
) -> None:
    """A bar per setting at the mean of its seeds, an error bar of one standard deviation (when there are
    several), and each seed as a dot; the mean is written on the bar."""
    names = list(values)
    means = [float(np.mean(values[n])) for n in names]
    stds = [float(np.std(values[n], ddof=1)) if len(values[n]) > 1 else 0.0 for n in names]
    x = np.arange(len(names))
    bars = ax.bar(x, means, yerr=stds if any(stds) else None, capsize=4, alpha=0.75)
    for i, name in enumerate(names):
        ax.scatter(np.full(len(values[name]), x[i]), values[name], color="black", s=10, zorder=3)
    ax.bar_label(bars, labels=[fmt.format(m) for m in means], padding=3, fontsize=8)
    ax.set_xticks(x, names, rotation=20 if max(len(n) for n in names) > 8 else 0)
    suffix = {True: " (lower is better)", False: " (higher is better)", None: ""}[lower_is_better]
    ax.set_ylabel(ylabel + suffix)
    if title:
        ax.set_title(title)
    low, high = min(min(v) for v in values.values()), max(max(v) for v in values.values())
    if low > 0 and (high - low) < 0.3 * high:  # small differences: zoom in rather than start at 0
        pad = (high - low) * 0.5 or 0.05 * high
        ax.set_ylim(low - pad, high + pad)


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
