"""Grids: an entry tuned over some values (``train: {lr: [1e-3, 2e-3, 4e-3]}``) takes, per task, the
value with the best mean *validation* metric over the tuning seeds (``zoo.compare.config.Tune``); its
results are its runs at that value, on every seed, and the report shows the choice beside them. Test
metrics never enter the choice (the ``lm`` task's test blocks are disjoint from its validation blocks
for this reason). A grid point that diverged on a tuning seed is out of the running; ties go to the
point written first.

Everything here reads the study's plain settings (``zoo.compare.config.study_settings``) and the run
records, so the report can redo it from ``results.json``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from zoo.compare.metrics import PRIMARY, metric_of


def tuning_metric(settings: dict[str, Any], kind: str) -> str:
    """The validation metric that picks grid values on a task of ``kind``."""
    return settings["tune"]["metric"] or f"val_{PRIMARY[kind]}"


def _numeric_axis(points: Sequence[dict[str, Any]]) -> list[float] | None:
    """The values of a grid over one numeric key, else None."""
    values = [p["values"] for p in points]
    if not values or any(len(v) != 1 for v in values):
        return None
    numbers = [next(iter(v.values())) for v in values]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers):
        return None
    return [float(x) for x in numbers]


def choose(settings: dict[str, Any], records: Sequence[dict[str, Any]]) -> tuple[dict, list[dict[str, Any]]]:
    """Each grid entry's choice per task, once every tuning run of it has finished.

    Returns:
        ``choices``: (task, entry) -> the chosen point's values (what ``zoo.compare.plan.plan`` takes), and
        ``tuning``: one record per (task, grid entry) for the report — the metric, each point's mean
        validation value over the tuning seeds (None: diverged or not finished), the chosen label, and
        ``edge`` when a one-key numeric grid chose its smallest or largest value (the best may lie beyond).
    """
    seeds = list(settings["tune"]["seeds"])
    found = {(r["task"], r["entry"], r["point"], r["seed"]): r for r in records}
    choices: dict[tuple[str, str], dict[str, Any]] = {}
    tuning = []
    for task in settings["tasks"]:
        metric = tuning_metric(settings, task["kind"])
        higher = metric_of(metric).higher_is_better
        for entry in settings["entries"]:
            if not entry["points"] or (entry["tasks"] is not None and task["name"] not in entry["tasks"]):
                continue
            rows, done = [], True
            for point in entry["points"]:
                runs = [found.get((task["name"], entry["name"], point["label"], s)) for s in seeds]
                done &= all(r is not None for r in runs)
                values = [r["metrics"].get(metric) if r and not r.get("diverged") else None for r in runs]
                finite = all(v is not None and math.isfinite(v) for v in values)
                rows.append({"point": point["label"], "values": values,  # None: diverged or not finished
                             "mean": statistics.fmean(values) if finite else None,
                             "diverged": any(r is not None and r.get("diverged") for r in runs)})
            candidates = [(i, row) for i, row in enumerate(rows) if row["mean"] is not None]
            chosen = None
            if done and candidates:
                index, _ = min(candidates, key=lambda c: (-c[1]["mean"] if higher else c[1]["mean"], c[0]))
                chosen = entry["points"][index]
                choices[(task["name"], entry["name"])] = chosen["values"]
            axis = _numeric_axis(entry["points"])
            edge = bool(chosen and axis and len(axis) >= 3 and axis[entry["points"].index(chosen)] in
                        (min(axis), max(axis)))
            tuning.append({"task": task["name"], "entry": entry["name"], "metric": metric, "seeds": seeds,
                           "points": rows, "chosen": chosen["label"] if chosen else None, "edge": edge,
                           "status": "chosen" if chosen else "waiting" if not done else "every point diverged"})
    return choices, tuning
