"""Reports of a study, drawn from ``results.json`` alone: ``results.md`` (per task: the budgets and
metrics of every entry, mean ± std over seeds; the paired verdicts against the baseline; the noise
floor; the grid's choices; warnings), ``results.csv`` (one row per run) and ``plots/`` (per task:
the primary validation metric against training tokens, and each entry's paired difference to its
baseline with its interval). ``zoo compare report <dir>`` redraws them without training, and
``--readme`` writes a study's table into a README between its markers (``readme_block``).

``results.json`` holds the study's settings (``zoo.compare.config.study_settings``), every run's record
(``zoo.compare.results``: every seed's values, grid points that lost included), the statistics
(``zoo.compare.statistics.analyse``: each comparison's ``as_dict()``), the command, the date, the
code (commit and ``zoo/`` fingerprint) and the hardware.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.analysis.stats import PairedComparison, PairedInterval
from zoo.compare.metrics import COLUMNS, PRIMARY, column_title, is_task_metric, metric_of
from zoo.compare.metrics import si as _si

RESULTS_FILE = "results.json"


def _params(record: dict[str, Any]) -> str:
    """Non-embedding parameters, and the active ones where a mixture of experts runs fewer per token."""
    if record.get("params") is None:
        return "—"
    active = record.get("active_params", record["params"])
    return _si(record["params"]) + (f" ({_si(active)} active)" if active != record["params"] else "")


def summary_line(record: dict[str, Any]) -> str:
    """One indented progress line with a finished run's metrics, size, tokens and time."""
    if record.get("diverged"):
        return f"    diverged: {record['diverged'].split(';')[0]}"
    keys = [*COLUMNS[record["kind"]], *(k for k in record["metrics"] if is_task_metric(k))]
    shown = [f"{column_title(key)} {record['metrics'][key]:.3f}" for key in keys if key in record["metrics"]]
    shown += [f"{_params(record)} params", f"{_si(record['tokens'])} tokens",
              f"{record['train_time_s'] + record['eval_time_s']:.0f} s"]
    return "    " + " · ".join(shown)


def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def comparison_from_dict(values: dict[str, Any]) -> PairedComparison:
    """The ``PairedComparison`` whose ``as_dict()`` ``results.json`` holds."""
    interval = PairedInterval(n=int(values["n"]), mean=values["difference"], sd=values["sd_difference"],
                              low=values["ci_low"], high=values["ci_high"], confidence=values["confidence"],
                              method=values["interval_method"])
    return PairedComparison(
        interval=interval, baseline_mean=values["baseline_mean"], entry_mean=values["entry_mean"],
        p_value=values["p_value"], p_adjusted=values["p_adjusted"], correction=values["correction"],
        detectable=values["detectable_difference"], power=values["power"], smallest_effect=values["smallest_effect"],
        alpha=values["alpha"], higher_is_better=values["higher_is_better"], verdict=values["verdict"],
        note=values["note"])


def verdict_cell(c: dict[str, Any]) -> str:
    """``**worse** +0.031 [+0.012, +0.050] · detects ≥ 0.011``: the verdict, the mean paired difference
    (entry − baseline) with its interval, and the smallest difference these seeds could detect."""
    detectable = f"detects ≥ {c['detectable_difference']:.2g}" if c["detectable_difference"] else "no spread"
    return (f"**{c['verdict']}** {c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] · {detectable}")


def _provenance_lines(summary: dict[str, Any]) -> list[str]:
    code = summary.get("provenance") or {}
    commit = (code.get("commit") or "unknown")[:10]
    dirty = " (zoo/ differed from that commit)" if code.get("zoo_dirty") else ""
    lines = [f"Made by `{summary.get('command') or 'zoo compare'}` on {summary.get('date', '?')} at commit {commit}"
             f"{dirty}, zoo/ fingerprint {code.get('zoo_fingerprint', '?')}; {hardware_line(summary)}.", ""]
    prints = sorted({r["code"]["zoo_fingerprint"] for r in summary["runs"] if r.get("code")})
    if len(prints) > 1:
        lines += [f"**Warning:** the runs were made by {len(prints)} versions of zoo/ (fingerprints "
                  f"{', '.join(prints)}): rerun the study with --fresh for results of one.", ""]
    return lines


def hardware_line(summary: dict[str, Any]) -> str:
    """``2 × Intel(R) Xeon(R) ... (cpu), torch 2.13.0, 1 thread per run``, from the runs' records."""
    machines = {(m.get("cpu"), m.get("cpus"), m.get("gpu"), m.get("torch"), m.get("threads"))
                for m in (r.get("machine") or {} for r in summary["runs"]) if m}
    if not machines:
        return "hardware not recorded"
    shown = []
    for cpu, cpus, gpu, torch, threads in sorted(machines, key=str):
        where = f"{gpu} GPU" if gpu else f"{cpus}-core {cpu} CPU"
        shown.append(f"{where}, torch {torch}, {threads} thread(s) per run")
    return "; ".join(shown)


def _chosen(summary: dict[str, Any], row: dict[str, Any]) -> dict[str, str]:
    """The row's grid values by key (``lr`` -> ``0.002``), as the plan labels them."""
    from zoo.compare.plan import point_label

    entries = {e["name"]: e for e in summary["entries"]}
    entry = entries[row["baseline"] if row["repeat"] else row["entry"]]
    point = next((p["values"] for p in entry["points"] if p["label"] == row["point"]), {})
    return {key.split(".", 1)[1]: point_label({key: value}).split("=", 1)[1] for key, value in point.items()}


def _budget_table(summary: dict[str, Any], table: dict[str, Any], grid_keys: list[str]) -> list[str]:
    columns = ["entry", *grid_keys, "params", "train tokens", "train FLOPs", "wall time (s)", "peak mem (MB)"]
    columns += [column_title(k) for k in table["metrics"]]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table["rows"]:
        if not row["seeds"] and not row["diverged"]:
            continue
        chosen = _chosen(summary, row)
        name = row["entry"] + (f" (diverged on seed {_seeds(row['diverged'])})" if row["diverged"] else "")
        cells = [name, *[chosen.get(k, "—") for k in grid_keys], _params(row),
                 _si(row["tokens"]) if row["tokens"] is not None else "—",
                 _si(row["flops"]) if row["flops"] is not None else "—", _mean_std(row["time_s"], 0),
                 f"{row['peak_mem_mb']:.0f}" if row["peak_mem_mb"] is not None else "—"]
        cells += [_mean_std(row["values"][k]) for k in table["metrics"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_table(comparison: dict[str, Any], effects: dict[str, float | None]) -> list[str]:
    seeds, metrics = comparison["seeds"], list(comparison["metrics"])
    if not comparison["entries"] and not comparison["excluded"] and not comparison["note"]:
        return []  # the baseline alone (a noise-floor study), or nothing finished yet: nothing to pair
    if comparison["entries"] and metrics:
        n = len(comparison["entries"])
        head = (f"#### Paired with {comparison['baseline']} ({len(seeds)} seeds: {_seeds(seeds)}; 95 % t-intervals; "
                f"p Holm-corrected across the {n} {'entry' if n == 1 else 'entries'})")
    else:
        head = f"#### Paired with {comparison['baseline']}"
    lines = [head, ""]
    if comparison["note"]:
        lines += [comparison["note"] + ".", ""]
    if metrics:
        ordered = [k for k in metrics if k.startswith("test_")] + [k for k in metrics if not k.startswith("test_")]
        lines += ["| entry | " + " | ".join(column_title(k) for k in ordered) + " |", "|" + "---|" * (len(ordered) + 1)]
        for name in comparison["entries"]:
            cells = [verdict_cell(comparison["metrics"][k][name]) if name in comparison["metrics"][k] else "—"
                     for k in ordered]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        matters = ", ".join(f"{column_title(k)} {effects[k]:g}" for k in ordered)
        lines += ["", f"Each cell: the verdict, the mean paired difference entry − {comparison['baseline']} with its "
                      f"95 % interval, and the smallest true difference these seeds detect with 80 % power. The "
                      f"smallest difference that matters: {matters}.", ""]
    for name, why in comparison["excluded"].items():
        lines += [f"{name}: {why}; left out of the statistics.", ""]
    if comparison.get("unfinished"):
        lines += [f"Not finished yet: {', '.join(comparison['unfinished'])}.", ""]
    return lines


def _noise_table(floor: dict[str, Any], seeds: int) -> list[str]:
    if not floor["metrics"]:
        return []
    k = len(floor["repeats"])
    lines = [f"#### Noise floor: {floor['baseline']} against {k} repeat(s) of itself (the same data, another "
             f"initialisation seed)", ""]
    if floor.get("note"):
        lines += [floor["note"] + ".", ""]
    first = next(iter(floor["metrics"].values()))
    effects = ", ".join(f"{e['effect']:.3g}" for e in first["seeds_needed"])
    lines += [f"| metric | seed-to-seed sd of {floor['baseline']} | sd of a paired difference (df) | detectable at "
              f"{seeds} seeds | seeds needed for Δ = {effects} | repeats' verdicts |", "|---|---|---|---|---|---|"]
    for key, m in floor["metrics"].items():
        sd = f"{m['sd_difference']:.3g} ({m['degrees_of_freedom']})" if m["sd_difference"] is not None else "—"
        needed = ", ".join("—" if e["seeds"] is None else str(e["seeds"]) for e in m["seeds_needed"]) or "—"
        verdicts = ", ".join(f"{c['verdict']}" for c in m["repeats"].values()) or "—"
        spread = f"{m['baseline_sd_over_seeds']:.3g}" if m["baseline_sd_over_seeds"] is not None else "—"
        detect = f"{m['detectable']:.3g}" if m["detectable"] is not None else "—"
        lines.append(f"| {column_title(key)} | {spread} | {sd} | {detect} | {needed} | {verdicts} |")
    lines += ["", "Seeds needed: for 80 % power at alpha 0.05 with the paired spread measured here "
                  "(`zoo.analysis.stats.seeds_needed`).", ""]
    return lines


def _tuning_table(tuning: list[dict[str, Any]]) -> list[str]:
    if not tuning:
        return []
    points = list(dict.fromkeys(p["point"] for t in tuning for p in t["points"]))
    metric = tuning[0]["metric"]
    lines = [f"#### Grid: {column_title(metric)} on seed(s) {_seeds(tuning[0]['seeds'])}, each entry's choice in bold",
             "", "| entry | " + " | ".join(points) + " |", "|" + "---|" * (len(points) + 1)]
    for t in tuning:
        by_point = {p["point"]: p for p in t["points"]}
        cells = []
        for point in points:
            p = by_point.get(point)
            text = ("—" if p is None else "diverged" if p["diverged"] else "…" if p["mean"] is None
                    else f"{p['mean']:.3f}")
            cells.append(f"**{text}**" if point == t["chosen"] else text)
        lines.append(f"| {t['entry']} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown_report(summary: dict[str, Any]) -> str:
    """``results.md`` from ``results.json``'s contents."""
    lines = [f"## {summary['name']}", ""]
    if summary.get("description"):
        lines += [summary["description"].strip(), ""]
    lines += _provenance_lines(summary)
    if summary.get("missing"):
        lines += [f"**{summary['missing']} run(s) of this study have no result yet**: the tables hold the finished "
                  f"ones.", ""]
    grid_keys = list(dict.fromkeys(k.split(".", 1)[1] for e in summary["entries"] for k in e["grid"]))
    for table in summary["tables"]:
        seeds = sorted({s for r in table["rows"] for s in r["seeds"]})
        lines += [f"### {table['task']} ({table['kind']}; seeds {_seeds(seeds)}; mean ± std over seeds)", ""]
        if table["test_note"]:
            lines += [table["test_note"], ""]
        lines += [f"**Warning:** {w}." for w in table["warnings"]] + ([""] if table["warnings"] else [])
        lines += _budget_table(summary, table, grid_keys) + [""]
        for comparison in table["comparisons"]:
            lines += _paired_table(comparison, summary["smallest_effect"])
        for floor in table["noise_floor"]:
            lines += _noise_table(floor, len(summary["seeds"]))
        lines += _tuning_table(table["tuning"])
        metric = metric_of(PRIMARY[table["kind"]]).title
        lines += [f"![{table['task']}: validation {metric} against training tokens](plots/{table['task']}.png)", ""]
        if any(c["metrics"] for c in table["comparisons"]):
            lines += [f"![{table['task']}: paired differences to the baseline](plots/{table['task']}-paired.png)", ""]
    memory = sorted({r["memory"] for r in summary["runs"]})
    lines += [f"Params: non-embedding parameters, heads included (a mixture of experts: also those a token runs); "
              f"the budget matched {_matched(summary['budget'])}. Train tokens: through the model's stacks, padding "
              f"not counted. Train FLOPs: matmul FLOPs of forward and backward (zoo.flops). Wall time: training (with "
              f"its validations) and the final evaluation. Peak memory: {', '.join(memory) or 'not recorded'}.", ""]
    return "\n".join(lines)


def _matched(budget: dict[str, Any]) -> str:
    matched = ["parameters"] if budget["params"] else []
    matched += ["training tokens"] if budget["tokens"] else ["training FLOPs"] if budget["flops"] else ["steps"]
    return " and ".join(matched)


def _csv(summary: dict[str, Any], path: Path) -> None:
    records = summary["runs"]
    base = ["entry", "family", "task", "kind", "seed", "init_seed", "point", "params", "active_params", "steps",
            "tokens", "flops", "train_time_s", "eval_time_s", "peak_mem_mb", "memory", "device", "diverged", "dir"]
    metric_keys = sorted({k for r in records for k in r["metrics"]})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=base + metric_keys)
        writer.writeheader()
        writer.writerows({**{k: r.get(k) for k in base}, **r["metrics"]} for r in records)


def _colors(summary: dict[str, Any]) -> Any:
    from zoo.analysis.plots import VariantColors

    return VariantColors([e["name"] for e in summary["entries"]])  # one colour per entry in every figure


def plot_curves(summary: dict[str, Any], directory: Path) -> list[Path]:
    """``directory/<task>.png``: the task's primary validation metric against training tokens, one
    line per entry at its chosen point (mean over seeds; the band spans the seeds' minimum to maximum)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors, paths = _colors(summary), []
    runs = {(r["task"], r["entry"], r["point"], r["seed"]): r for r in summary["runs"]}
    for table in summary["tables"]:
        metric = metric_of(PRIMARY[table["kind"]])
        key = f"val_{PRIMARY[table['kind']]}"
        figure, axes = plt.subplots(figsize=(7.0, 4.4))
        for row in table["rows"]:
            curves = [[p for p in runs[(table["task"], row["entry"], row["point"], s)]["curve"] if key in p]
                      for s in row["seeds"]]
            length = min(map(len, curves), default=0)
            if length == 0:
                continue
            xs = [statistics.fmean(c[i]["tokens"] for c in curves) for i in range(length)]
            ys = [[c[i][key] for c in curves] for i in range(length)]
            color = colors(row["entry"])
            axes.plot(xs, [statistics.fmean(y) for y in ys], marker="o", markersize=3, label=row["entry"], color=color)
            if len(curves) > 1:
                axes.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.15, color=color)
        axes.set_xlabel("training tokens")
        better = "higher" if metric.higher_is_better else "lower"
        axes.set_ylabel(f"validation {metric.title} ({metric.unit}; {better} is better)")
        axes.set_title(f"{summary['name']}: {table['task']} (mean over seeds; band: min to max)", fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", ncol=2 if len(table["rows"]) > 8 else 1)
        figure.tight_layout()
        path = directory / f"{table['task']}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def plot_paired(summary: dict[str, Any], directory: Path) -> list[Path]:
    """``directory/<task>-paired.png``: per group and test metric (validation where there is no test),
    each entry's paired difference to its baseline with its 95 % interval and verdict
    (``zoo.analysis.plots.plot_paired_differences``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.analysis.plots import plot_paired_differences

    colors, paths = _colors(summary), []
    for table in summary["tables"]:
        panels = []
        for comparison in table["comparisons"]:
            keys = [k for k in comparison["metrics"] if k.startswith("test_")] or list(comparison["metrics"])
            panels += [(comparison, k) for k in keys if comparison["metrics"][k]]
        if not panels:
            continue
        heights = [1.6 + 0.4 * len(c["metrics"][k]) for c, k in panels]
        figure, axes = plt.subplots(len(panels), 1, figsize=(8.0, sum(heights)), squeeze=False,
                                    gridspec_kw={"height_ratios": heights})
        for ax, (comparison, key) in zip(axes[:, 0], panels, strict=True):
            found = {name: comparison_from_dict(c) for name, c in comparison["metrics"][key].items()}
            plot_paired_differences(ax, found, metric=column_title(key), unit=metric_of(key).unit,
                                    baseline=comparison["baseline"], colors=colors)
            ax.set_title(f"{table['task']}{', ' + comparison['group'] if comparison['group'] else ''}: "
                         + ax.get_title(), fontsize=9)
        figure.tight_layout()
        path = directory / f"{table['task']}-paired.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def render(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """(Re)draw ``results.md``, ``results.csv`` and ``plots/`` of the study in ``directory`` from its
    ``results.json`` alone.

    Raises:
        FileNotFoundError: ``directory`` holds no ``results.json``.
    """
    out = Path(directory)
    path = out / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)} does not exist; run the study first (zoo compare --config ...)")
    summary = json.loads(path.read_text(encoding="utf-8"))
    (out / "results.md").write_text(markdown_report(summary), encoding="utf-8")
    _csv(summary, out / "results.csv")
    (out / "plots").mkdir(exist_ok=True)
    plot_curves(summary, out / "plots")
    plot_paired(summary, out / "plots")
    return summary


def write_reports(settings: dict[str, Any], records: Sequence[dict[str, Any]], directory: Path, *, missing: int = 0,
                  command: str | None = None, analyse: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``results.json`` (settings, runs, statistics, command, date, code) and draw the rest from it."""
    from zoo.analysis.provenance import provenance
    from zoo.compare.statistics import analyse as default_analyse

    directory.mkdir(parents=True, exist_ok=True)
    summary = {**settings, "command": command, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "provenance": provenance(), "missing": missing, "runs": list(records),
               **(analyse or default_analyse)(settings, records)}
    text = json.dumps(summary, indent=1, default=str, allow_nan=False)
    (directory / RESULTS_FILE).write_text(text + "\n", encoding="utf-8")
    return render(directory)


# ---------------------------------------------------------------------------------------------
# A study's table in a README


def readme_markers(name: str) -> tuple[str, str]:
    """The lines a README holds a study's generated table between."""
    return f"<!-- zoo compare {name}: begin -->", f"<!-- zoo compare {name}: end -->"


def readme_block(summary: dict[str, Any], directory: str) -> str:
    """The README's table of a study: per task and group, every entry's chosen grid value, budgets,
    test metric and its paired verdict with the smallest detectable difference, and what made it."""
    code = summary.get("provenance") or {}
    finished = max((r.get("finished_at") or "" for r in summary["runs"]), default="")[:10] or summary["date"][:10]
    dirty = " with local changes to zoo/" if code.get("zoo_dirty") else ""
    lines = [f"Generated by `zoo compare report {directory} --readme README.md` from the results of "
             f"`{summary.get('command') or 'zoo compare'}` (finished {finished}; commit "
             f"{(code.get('commit') or 'unknown')[:10]}{dirty}; {hardware_line(summary)}; "
             f"{len(summary['runs'])} runs).", ""]
    grid_keys = list(dict.fromkeys(k.split(".", 1)[1] for e in summary["entries"] for k in e["grid"]))
    for table in summary["tables"]:
        rows = {r["entry"]: r for r in table["rows"]}
        for comparison in table["comparisons"]:
            keys = [k for k in comparison["metrics"] if k.startswith("test_")]
            if not keys:
                continue
            key = keys[0]
            metric = metric_of(key)
            title = f"{table['task']}" + (f", {comparison['group']}" if comparison["group"] else "")
            better = "higher" if metric.higher_is_better else "lower"
            lines += [f"**{title}** — {column_title(key)} ({metric.unit}; {better} is better), "
                      f"{len(comparison['seeds'])} seeds, paired with {comparison['baseline']}; "
                      f"smallest difference that matters {summary['smallest_effect'][key]:g}:", ""]
            columns = ["entry", *grid_keys, "params", "train FLOPs", "train tokens", f"{column_title(key)}",
                       "Δ vs baseline [95 % CI]", "verdict (Holm)", "detectable (80 % power)"]
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            for name in [comparison["baseline"], *comparison["entries"], *comparison["excluded"]]:
                row = rows[name]
                chosen = _chosen(summary, row)
                c = comparison["metrics"][key].get(name)
                cells = [name, *[chosen.get(k, "—") for k in grid_keys], _params(row),
                         _si(row["flops"]) if row["flops"] else "—", _si(row["tokens"]) if row["tokens"] else "—",
                         _mean_std(row["values"][key])]
                if name == comparison["baseline"]:
                    cells += ["(baseline)", "", ""]
                elif c is None:
                    cells += ["—", comparison["excluded"].get(name, "—"), ""]
                else:
                    detectable = c["detectable_difference"]
                    cells += [f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]", c["verdict"],
                              f"{detectable:.2g}" if detectable else "0 (no spread)"]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            if comparison.get("unfinished"):
                lines += [f"Not finished yet: {', '.join(comparison['unfinished'])}.", ""]
        for floor in table["noise_floor"]:
            for key, m in floor["metrics"].items():
                if key.startswith("test_") and m["sd_difference"] is not None:
                    needed = ", ".join(f"{e['seeds'] if e['seeds'] is not None else '—'} for {e['effect']:.3g}"
                                       for e in m["seeds_needed"])
                    lines += [f"Noise floor ({table['task']}, {floor['baseline']} against {len(floor['repeats'])} "
                              f"repeat(s) on another initialisation seed): a paired difference of two runs of the same "
                              f"model spreads with sd {m['sd_difference']:.3g} {metric_of(key).unit} "
                              f"({m['degrees_of_freedom']} df); seeds needed (80 % power): {needed}.", ""]
        lines += [f"**Warning:** {w}." for w in table["warnings"]] + ([""] if table["warnings"] else [])
    return "\n".join(lines).rstrip() + "\n"


def write_readme(summary: dict[str, Any], directory: str, readme: str | os.PathLike[str]) -> Path:
    """Replace the text between the study's markers in ``readme`` with ``readme_block``.

    Raises:
        ValueError: The README lacks the markers (one line saying which to add).
    """
    path = Path(readme)
    if not path.is_file():
        raise FileNotFoundError(f"--readme {os.fspath(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    begin, end = readme_markers(summary["name"])
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{os.fspath(path)} has no lines {begin!r} ... {end!r}; add them where the table of "
                         f"{summary['name']} belongs")
    block = readme_block(summary, directory)
    path.write_text(pattern.sub(lambda _: f"{begin}\n{block}{end}", text, count=1), encoding="utf-8")
    return path
