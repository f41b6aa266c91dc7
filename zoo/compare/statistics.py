"""What a study's runs say, as numbers: per task, each entry's values per seed, its paired verdict
against its baseline, the noise floor, and warnings about budgets and grids — from the study's plain
settings and its run records alone (``results.json``), with ``zoo.analysis.stats``.

**Which runs.** An entry's results are its runs at its chosen grid point (no point without a grid),
one per seed; a repeat of the baseline runs at the baseline's point.

**Pairing.** Runs pair by seed: the same split, data order and masks, and the same initialisation
seed (``zoo.compare.plan``). Each table — one per task and group (the entries crossed from one base
entry; the whole study without groups) — is read on the seeds every one of its entries finished;
an entry with a diverged run is left out of the statistics (and says so), so it cannot cost the
others a seed. Per metric with a smallest effect (``zoo.compare.metrics``), ``compare_to_baseline``
gives each entry its mean paired difference with a 95 % Student-t interval, the paired t-test's
p-value, Holm–Bonferroni across the table's entries, the smallest difference the seeds could detect
(80 % power) and the verdict: better / worse / negligible / no detectable difference / inconclusive.

**Noise floor** (``repeat_baseline: k``). What should a repeat vary? An exact repeat (same seed) is
the same computation — bitwise the same result on a CPU — and measures nothing; a repeat on other
seeds measures the spread of the baseline across splits, which pairing removes. A paired difference
``entry - baseline`` on one seed still carries the noise of the two models' *initialisations* (an
entry of other shapes starts from other weights) and how the shared batches fall on them. So a repeat
keeps the seed's data (split, order, masks) and moves only the initialisation seed
(``seed + 1000·r``, dropout with it): the baseline against its own repeats is a null comparison with
the same noise a real entry's comparison has. The report gives, per metric:

- the baseline's seed-to-seed spread (the sample standard deviation over seeds: split, order and
  initialisation all vary — what an unpaired comparison would face);
- ``sd_difference``: the standard deviation of a paired difference between two runs that compute the
  same function, ``√2 · σ_init``, with ``σ_init²`` pooled within seeds over the baseline and its
  ``k`` repeats (``seeds · k`` degrees of freedom; on the null the mean difference is 0, so this needs
  no mean of its own);
- what that spread lets this many seeds detect, and how many seeds an effect needs
  (``seeds_needed``: 80 % power, alpha 0.05);
- each repeat's own verdict, which should read "no detectable difference" or "inconclusive": a
  "better" or "worse" there is a false alarm (each at most 5 % of tables).

It is a floor where the entry has the baseline's shapes (the same initial weights: less noise than
this) and about right where shapes differ.

**Budgets.** Every row has parameters (non-embedding; a mixture of experts counts the active ones),
training tokens and FLOPs (``zoo.flops``). A quantity the budget does not match (``budget.params`` /
``tokens`` / ``flops``) that differs by more than 10 % between a table's entries is a warning: the
comparison is then not only of architectures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from zoo.analysis.stats import StatisticsError, compare_to_baseline, detectable_difference, seeds_needed
from zoo.compare.config import smallest_effect
from zoo.compare.grid import choose
from zoo.compare.metrics import COLUMNS, metric_of
from zoo.compare.metrics import si as _si

#: Entries whose unmatched budget differs by more than this (relative) are warned about.
BUDGET_SPREAD = 0.10
#: The noise floor's seeds-needed table: these multiples of the smallest effect that matters.
EFFECT_MULTIPLES = (1, 2, 4, 10)
MIN_SEEDS = 3


def _applies(entry: dict[str, Any], task: dict[str, Any]) -> bool:
    return entry["tasks"] is None or task["name"] in entry["tasks"]


def columns(settings: dict[str, Any], kind: str) -> list[str]:
    """A table's metrics: its kind's, then (``lm``) the study's eval task scores (``zoo_cloze/acc``)."""
    scored = (settings.get("eval") or {}).get("metrics", []) if kind == "lm" else []
    return [*COLUMNS[kind], *scored]


def _rows(settings: dict[str, Any], task: dict[str, Any], records: Sequence[dict[str, Any]],
          chosen: dict[tuple[str, str], str | None]) -> list[dict[str, Any]]:
    """One row per entry of ``task``: its runs at its chosen point, values per seed."""
    keys = columns(settings, task["kind"])
    found = {(r["entry"], r["point"], r["seed"]): r for r in records if r["task"] == task["name"]}
    rows = []
    for entry in settings["entries"]:
        if not _applies(entry, task):
            continue
        source = entry["baseline"] if entry["repeat"] else entry["name"]
        point = chosen.get((task["name"], source), "")
        runs = {} if point is None else {s: found[(entry["name"], point, s)] for s in settings["seeds"]
                                         if (entry["name"], point, s) in found}
        good = {s: r for s, r in runs.items() if not r.get("diverged")}
        first = next(iter(runs.values()), None)
        rows.append({
            "entry": entry["name"], "family": entry["family"], "group": entry["group"], "baseline": entry["baseline"],
            "repeat": entry["repeat"], "point": point, "seeds": sorted(good), "diverged": sorted(set(runs) - set(good)),
            "params": first["params"] if first else None, "active_params": first["active_params"] if first else None,
            "tokens": statistics.fmean(r["tokens"] for r in runs.values()) if runs else None,
            "flops": statistics.fmean(r["flops"] for r in runs.values()) if runs else None,
            "time_s": [r["train_time_s"] + r["eval_time_s"] for r in good.values()],
            "peak_mem_mb": max((r["peak_mem_mb"] for r in good.values()), default=None),
            "values": {k: [good[s]["metrics"][k] for s in sorted(good) if k in good[s]["metrics"]] for k in keys},
            "by_seed": {k: {str(s): good[s]["metrics"][k] for s in sorted(good) if k in good[s]["metrics"]}
                        for k in keys},
        })
    return rows


def _metrics(settings: dict[str, Any], kind: str) -> list[str]:
    """The table's metrics that get verdicts: those with a smallest difference that matters."""
    return [k for k in columns(settings, kind) if smallest_effect(settings["smallest_effect"], k) is not None]


def _paired(settings: dict[str, Any], kind: str, rows: list[dict[str, Any]], baseline: str,
            members: list[str]) -> dict[str, Any]:
    """``members`` against ``baseline`` on the seeds all of them finished, per metric, Holm across them."""
    by_name = {r["entry"]: r for r in rows}
    base = by_name.get(baseline)
    out: dict[str, Any] = {"baseline": baseline, "entries": members, "excluded": {}, "unfinished": [], "seeds": [],
                           "metrics": {}, "note": ""}
    if base is None or not base["seeds"]:
        out["note"] = f"the baseline {baseline!r} has no finished run: no statistics"
        return out
    if base["diverged"]:
        out["note"] = f"the baseline {baseline!r} diverged on seed(s) {base['diverged']}: no statistics"
        return out
    kept = []
    for name in members:
        row = by_name[name]
        if row["diverged"]:
            out["excluded"][name] = f"diverged on seed(s) {', '.join(map(str, row['diverged']))}"
        elif not row["seeds"]:
            out["unfinished"].append(name)  # not run yet (--only, or a study stopped early)
        else:
            kept.append(name)
    seeds = [s for s in base["seeds"] if all(s in by_name[n]["seeds"] for n in kept)]
    out["seeds"], out["entries"] = seeds, kept
    if not kept:
        return out
    if len(seeds) < MIN_SEEDS:
        out["note"] = (f"{len(seeds)} seed(s) finished by every entry of this table: intervals need >= 2 and verdicts "
                       f">= {MIN_SEEDS}")
        return out
    for key in _metrics(settings, kind):
        results = {n: [by_name[n]["by_seed"][key][str(s)] for s in seeds]
                   for n in [baseline, *kept] if all(str(s) in by_name[n]["by_seed"][key] for s in seeds)}
        if baseline not in results or len(results) < 2:
            continue
        metric = metric_of(key)
        table = compare_to_baseline(results, baseline=baseline, higher_is_better=metric.higher_is_better,
                                    smallest_effect=smallest_effect(settings["smallest_effect"], key))
        out["metrics"][key] = {name: c.as_dict() for name, c in table.items()}
    return out


def _noise_floor(settings: dict[str, Any], kind: str, rows: list[dict[str, Any]], baseline: str) -> dict[str, Any]:
    """The baseline against its repeats (see the module docstring)."""
    by_name = {r["entry"]: r for r in rows}
    repeats = [r["entry"] for r in rows if r["repeat"] and r["baseline"] == baseline]
    floor: dict[str, Any] = {"baseline": baseline, "repeats": repeats, "metrics": {}}
    base = by_name.get(baseline)
    if base is None or not repeats:
        return floor
    paired = _paired(settings, kind, rows, baseline, repeats)
    seeds = paired["seeds"]
    floor.update(seeds=seeds, note=paired["note"], excluded=paired["excluded"])
    kept = paired["entries"]
    if not kept:
        return floor  # no repeat finished yet
    for key in _metrics(settings, kind):
        spread = base["values"][key]
        result: dict[str, Any] = {
            "baseline_sd_over_seeds": statistics.stdev(spread) if len(spread) > 1 else None,
            "baseline_values": spread, "sd_difference": None, "degrees_of_freedom": 0, "detectable": None,
            "seeds_needed": [], "repeats": paired["metrics"].get(key, {}),
        }
        groups = [[by_name[n]["by_seed"][key].get(str(s)) for n in [baseline, *kept]] for s in seeds]
        groups = [g for g in groups if None not in g and len(g) > 1]
        if groups:
            within = statistics.fmean(statistics.variance(g) for g in groups)  # sigma_init^2, pooled over seeds
            sd = math.sqrt(2 * within)
            m = smallest_effect(settings["smallest_effect"], key)
            result.update(sd_difference=sd, degrees_of_freedom=sum(len(g) - 1 for g in groups))
            if len(settings["seeds"]) >= 2:
                result["detectable"] = detectable_difference(sd, len(settings["seeds"]))
            for multiple in EFFECT_MULTIPLES:
                effect = m * multiple
                if effect > 0:
                    try:
                        needed: int | None = seeds_needed(sd, effect)
                    except StatisticsError:  # beyond its search: more than 10,000 seeds
                        needed = None
                    result["seeds_needed"].append({"effect": effect, "seeds": needed})
        floor["metrics"][key] = result
    return floor


def _budget_warnings(settings: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    budget = settings["budget"]
    matched = {"params": budget["params"] is not None, "tokens": budget["tokens"] is not None,
               "flops": budget["flops"] is not None}
    names = {"params": ("non-embedding parameters (active)", "budget.params"),
             "tokens": ("training tokens", "budget.tokens"), "flops": ("training FLOPs", "budget.flops")}
    entries = [r for r in rows if not r["repeat"] and r["tokens"] is not None]
    warnings = []
    for quantity, is_matched in matched.items():
        values = {r["entry"]: r["active_params" if quantity == "params" else quantity] for r in entries}
        if is_matched or len(values) < 2:
            continue
        low, high = min(values, key=values.get), max(values, key=values.get)
        if values[low] > 0 and values[high] / values[low] - 1 > BUDGET_SPREAD:
            title, key = names[quantity]
            warnings.append(
                f"{title} differ by {values[high] / values[low]:.2f}x ({low} {_si(values[low])}, {high} "
                f"{_si(values[high])}) and the budget does not match them ({key}): the differences are not only "
                f"the architectures'")
    return warnings


def analyse(settings: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every table's numbers (see the module docstring): ``{"choices": ..., "tables": [...]}``.

    ``choices`` lists each grid entry's choice per task; each table holds ``rows`` (values per seed and
    budgets), ``comparisons`` (one per group: the seeds used, every entry's ``as_dict()`` per metric,
    exclusions and notes), ``noise_floor`` (one per baseline with repeats), ``tuning`` and ``warnings``.
    """
    _, tuning = choose(settings, records)
    chosen: dict[tuple[str, str], str | None] = {(t["task"], t["entry"]): t["chosen"] for t in tuning}
    tables = []
    for task in settings["tasks"]:
        rows = _rows(settings, task, records, chosen)
        if not any(r["seeds"] or r["diverged"] for r in rows):
            continue
        comparisons, floors = [], []
        for baseline in dict.fromkeys(r["baseline"] for r in rows if r["baseline"]):
            members = [r["entry"] for r in rows if r["baseline"] == baseline and not r["repeat"]
                       and r["entry"] != baseline]
            group = next(r["group"] for r in rows if r["entry"] == baseline) if baseline in {r["entry"] for r in rows} \
                else ""
            comparisons.append({"group": group, **_paired(settings, task["kind"], rows, baseline, members)})
            if any(r["repeat"] and r["baseline"] == baseline for r in rows):
                floors.append(_noise_floor(settings, task["kind"], rows, baseline))
        task_tuning = [t for t in tuning if t["task"] == task["name"]]
        warnings = _budget_warnings(settings, rows)
        warnings += [f"{t['entry']}: the grid chose {t['chosen']}, at its edge; the best value may lie beyond it"
                     for t in task_tuning if t["edge"]]
        warnings += [f"{t['entry']}: every grid point diverged; it has no results" for t in task_tuning
                     if t["status"] == "every point diverged"]
        tables.append({"task": task["name"], "kind": task["kind"], "test_note": task.get("test_note", ""),
                       "metrics": columns(settings, task["kind"]), "rows": rows, "comparisons": comparisons,
                       "noise_floor": floors, "tuning": task_tuning, "warnings": warnings})
    return {"choices": [{"task": t["task"], "entry": t["entry"], "chosen": t["chosen"]} for t in tuning],
            "tables": tables}
