"""Reports of a comparison, from its runs' results (``zoo.compare.results``): results.csv,
results.json, results.md (mean ± std over seeds) and one plot per task of the validation metric
against training tokens."""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.compare.config import Comparison

#: Per kind of task: the metric plotted against training tokens and whether higher is better.
PRIMARY_METRIC = {"seq2seq": ("exact_match", True), "classification": ("accuracy", True), "lm": ("bpb", False)}
#: Per kind: (result key, column title) of the table, after the budget columns.
METRIC_COLUMNS = {
    "seq2seq": (("val_exact_match", "val exact match"), ("val_cer", "val CER"),
                ("test_exact_match", "test exact match"), ("test_cer", "test CER")),
    "classification": (("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro-F1"),
                       ("test_accuracy", "test accuracy"), ("test_macro_f1", "test macro-F1")),
    "lm": (("val_bpb", "val bits/byte"), ("val_perplexity", "val perplexity"), ("test_bpb", "test bits/byte")),
}


def _si(value: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def summary_line(record: dict[str, Any]) -> str:
    """One indented progress line with a finished run's metrics, size, tokens and time."""
    kind = record["kind"]
    shown = [f"{title} {record['metrics'][key]:.3f}" for key, title in METRIC_COLUMNS[kind]
             if key in record["metrics"]]
    shown += [f"{_params(record)} params", f"{_si(record['tokens'])} tokens",
              f"{record['train_time_s'] + record['eval_time_s']:.0f} s"]
    return "    " + " · ".join(shown)


def _params(record: dict[str, Any]) -> str:
    """Non-embedding parameters, and the active ones where a mixture of experts runs fewer per token."""
    active = record.get("active_params", record["params"])
    return _si(record["params"]) + (f" ({_si(active)} active)" if active != record["params"] else "")


def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _grouped(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """task -> entry -> records (in first-seen order)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        out.setdefault(record["task"], {}).setdefault(record["entry"], []).append(record)
    return out


def markdown_table(comparison: Comparison, records: Sequence[dict[str, Any]], missing: int = 0) -> str:
    """One table per task: budget columns, then the metrics as mean ± std over seeds; ``missing``
    runs of the study have no result yet."""
    specs = {task.name: task for task in comparison.tasks}
    lines = [f"## {comparison.name}", ""]
    if comparison.description:
        lines += [comparison.description.strip(), ""]
    if missing:
        lines += [f"**{missing} run(s) of this study have no result yet**: the tables hold the finished ones.", ""]
    for task, entries in _grouped(records).items():
        first = next(iter(entries.values()))[0]
        kind = first["kind"]
        seeds = sorted({r["seed"] for rs in entries.values() for r in rs})
        note = getattr(specs.get(task), "test_note", "")
        lines += [f"### {task} ({kind}; seeds {', '.join(map(str, seeds))}; mean ± std)", ""]
        if note:
            lines += [note, ""]
        columns = ["entry", "params", "train tokens", "train FLOPs", "wall time (s)", "peak mem (MB)"]
        columns += [title for _, title in METRIC_COLUMNS[kind]]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for entry, rs in entries.items():
            def mean(key: str, rs: list[dict[str, Any]] = rs) -> str:
                return _si(statistics.fmean(r[key] for r in rs))

            row = [entry, _params(rs[0]), mean("tokens"), mean("flops"),
                   _mean_std([r["train_time_s"] + r["eval_time_s"] for r in rs], 0),
                   f"{max(r['peak_mem_mb'] for r in rs):.0f}"]
            row += [_mean_std([r["metrics"][key] for r in rs if key in r["metrics"]])
                    for key, _ in METRIC_COLUMNS[kind]]
            lines.append("| " + " | ".join(row) + " |")
        metric = PRIMARY_METRIC[kind][0].replace("_", " ")
        lines += ["", f"![{task}: validation {metric} against training tokens](plots/{task}.png)", ""]
    memory = {r["memory"] for r in records}
    lines += [f"Params: non-embedding parameters, heads included (a mixture of experts: also those a token runs). "
              f"Train tokens: through the model's stacks, padding not counted. Train FLOPs: matmul FLOPs of forward "
              f"and backward (zoo.flops). Wall time: training (with its validations) and the final evaluation. "
              f"Peak memory: {', '.join(sorted(memory))}.", ""]
    return "\n".join(lines)


def _csv_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    base = ["entry", "family", "task", "kind", "seed", "params", "active_params", "steps", "tokens", "flops",
            "train_time_s", "eval_time_s", "peak_mem_mb", "memory", "device", "dir"]
    metric_keys = sorted({k for r in records for k in r["metrics"]})
    rows = [{**{k: r[k] for k in base}, **r["metrics"]} for r in records]
    return base + metric_keys, rows


def plot_curves(comparison: Comparison, records: Sequence[dict[str, Any]], directory: Path) -> list[Path]:
    """``directory/<task>.png``: the task's primary validation metric against training tokens, one
    line per entry (mean over seeds; the band spans the seeds' minimum to maximum)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, entries in _grouped(records).items():
        kind = next(iter(entries.values()))[0]["kind"]
        metric, higher = PRIMARY_METRIC[kind]
        key = f"val_{metric}"
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for entry, rs in entries.items():
            curves = [[p for p in r["curve"] if key in p] for r in rs]
            length = min(map(len, curves))
            if length == 0:
                continue
            xs = [statistics.fmean(c[i]["tokens"] for c in curves) for i in range(length)]
            ys = [[c[i][key] for c in curves] for i in range(length)]
            axes.plot(xs, [statistics.fmean(y) for y in ys], marker="o", markersize=3, label=entry)
            if len(curves) > 1:
                axes.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.2)
        axes.set_xlabel("training tokens")
        axes.set_ylabel(f"validation {metric.replace('_', ' ')} ({'higher' if higher else 'lower'} is better)")
        axes.set_title(f"{comparison.name}: {task}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = directory / f"{task}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def write_reports(comparison: Comparison, records: Sequence[dict[str, Any]], missing: int = 0) -> None:
    """results.csv (one row per run), results.json (runs and settings), results.md, plots/*.png."""
    out = comparison.output_dir
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = _csv_rows(records)
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "name": comparison.name, "seeds": comparison.seeds, "budget": dataclasses.asdict(comparison.budget),
        "train": dataclasses.asdict(comparison.train), "model": comparison.model,
        "entries": [dataclasses.asdict(e) for e in comparison.entries],
        "tasks": [t.options() for t in comparison.tasks], "runs": list(records),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    (out / "results.md").write_text(markdown_table(comparison, records, missing), encoding="utf-8")
    plot_curves(comparison, records, out / "plots")
