"""A run's result, read from its run directory alone (``zoo.runs``): ``run.json`` of the fit and of
the final ``validate`` and ``test``, ``metrics.csv`` for the curves, ``job.json`` for peak memory,
``eval/scores.json`` for the study's eval task scores (``zoo.compare.job``) — so
the report is the same however the runs were made (one process after another, ``--jobs N``, SLURM,
or ``zoo fit --config <run>/fit.yaml`` by hand). A run directory that holds another config than the
study now asks for is refused: results are never mixed.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from typing import TYPE_CHECKING, Any

import yaml

from zoo.compare.job import EVAL_FILE, FIT_FILE, JOB_FILE, read_scores
from zoo.compare.plan import Run
from zoo.runs import read_run

if TYPE_CHECKING:
    from zoo.compare.config import EvalSettings


def fit_text(run: Run, threads: int) -> str:
    """The run's ``fit.yaml`` as written (with a header saying how to retrain it alone: CPU results
    are bitwise the same with the same number of threads)."""
    header = (f"# {run.label}: one run of a zoo compare study; retrain it alone (bit for bit) with\n"
              f"#   OMP_NUM_THREADS={threads} zoo fit --config {run.dir / FIT_FILE}\n")
    return header + yaml.safe_dump(run.fit_config, sort_keys=False)


def _differences(before: Any, now: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        return [d for k in sorted(set(before) | set(now), key=str)
                for d in _differences(before.get(k), now.get(k), f"{prefix}{k}.")]
    return [] if before == now else [f"{prefix[:-1]}: {before!r} -> {now!r}"]


def prepare(runs: list[Run], fresh: bool, threads: int, evaluation: EvalSettings | None = None) -> None:
    """Write each run's ``fit.yaml`` (and, for the runs of ``lm`` tasks when the study names eval
    tasks, its ``eval.json``); with ``fresh``, first remove what its directory held.

    Raises:
        ValueError: A run directory holds another config than the one planned (one line; ``--fresh``
            starts those runs over).
    """
    for run in runs:
        path = run.dir / FIT_FILE
        if fresh and run.dir.exists():
            shutil.rmtree(run.dir)
        if path.is_file():
            differences = _differences(yaml.safe_load(path.read_text()), run.fit_config)
            if differences:
                more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
                raise ValueError(f"{run.dir} holds a run of another config than this study asks for "
                                 f"({differences[0]}{more}); rerun with --fresh to train these runs again (their "
                                 f"results are deleted), or write the study elsewhere with --output-dir")
    for run in runs:
        run.dir.mkdir(parents=True, exist_ok=True)
        if not (run.dir / FIT_FILE).is_file():
            (run.dir / FIT_FILE).write_text(fit_text(run, threads))
        request = run.dir / EVAL_FILE
        if evaluation is not None and run.task.kind == "lm":
            request.write_text(json.dumps(evaluation.request(), indent=1) + "\n")
        else:
            request.unlink(missing_ok=True)  # a study that dropped eval: old scores are not reported


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _curve(run: Run, tokens_per_step: float, flops_per_step: float) -> list[dict[str, float]]:
    """Validation metrics by step from ``metrics.csv``, with the training tokens and FLOPs spent."""
    path = run.dir / "metrics.csv"
    if not path.is_file():
        return []
    points: dict[int, dict[str, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k: _number(v) for k, v in row.items() if k.startswith("val_") and v not in ("", None)}
            if values and row.get("step"):
                step = int(float(row["step"])) + 1  # Lightning logs validation at the step before the count
                point = points.setdefault(step, {"step": step, "tokens": step * tokens_per_step,
                                                 "flops": step * flops_per_step})
                point.update({k: v for k, v in values.items() if v is not None})
    return [points[s] for s in sorted(points)]


def read_result(run: Run) -> dict[str, Any] | None:
    """The result record of a finished run (None while its fit, validation or test is not done, or
    when its directory holds another config than the study's). A run that diverged is finished: its
    record says ``diverged`` (why) and holds no metrics."""
    path = run.dir / FIT_FILE
    if not path.is_file() or _differences(yaml.safe_load(path.read_text()), run.fit_config):
        return None
    job = json.loads((run.dir / JOB_FILE).read_text()) if (run.dir / JOB_FILE).is_file() else {}
    fit, validate, test = (read_run(d) for d in (run.dir, run.dir / "validate", run.dir / "test"))
    scores = {} if job.get("diverged") else read_scores(run.dir)
    if job.get("diverged"):
        validate = test = {}
    elif scores is None or not all(r.get("status") == "finished" for r in (fit, validate, test)):
        return None  # not trained, tested or scored yet
    metrics = {k: float(v) for r in (validate, test) for k, v in (r.get("final_metrics") or {}).items()
               if k.startswith(("val_", "test_")) and isinstance(v, (int, float))}
    metrics.update(scores)
    steps = int(fit.get("global_step") or run.steps)
    per_step_tokens, per_step_flops = run.tokens / run.steps, run.flops / run.steps
    curve = _curve(run, per_step_tokens, per_step_flops)
    if not curve or curve[-1]["step"] != steps:
        curve.append({"step": steps, "tokens": steps * per_step_tokens, "flops": steps * per_step_flops,
                      **{k: v for k, v in metrics.items() if k.startswith("val_")}})
    return {
        "key": run.name, "entry": run.entry.name, "family": run.entry.family, "task": run.task.name,
        "kind": run.task.kind, "seed": run.seed, "init_seed": run.init_seed, "point": run.point_label,
        "grid_point": run.point, "group": run.entry.group, "baseline": run.entry.baseline,
        "repeat": run.entry.repeat, "diverged": job.get("diverged"),
        "params": run.params, "active_params": run.active_params,
        "config": run.fit_config["model"]["init_args"]["config"], "dir": str(run.dir),
        "steps": steps, "tokens": round(steps * per_step_tokens), "flops": steps * per_step_flops,
        "train_time_s": float(fit.get("seconds") or 0),
        "eval_time_s": float(validate.get("seconds") or 0) + float(test.get("seconds") or 0),
        "peak_mem_mb": job.get("peak_mem_mb", math.nan), "memory": job.get("memory", "not recorded"),
        "device": job.get("device", ""), "metrics": metrics, "curve": curve, "finished_at": fit.get("end"),
        "commit": fit.get("commit"), "code": job.get("code"),
        "machine": {k: job.get(k) for k in ("host", "cpu", "cpus", "gpu", "torch", "threads") if k in job},
    }
