"""One evaluation: check the task list against the model, run lm-eval, write and print the results.

``zoo eval`` and the in-training callback both go through ``evaluate``. Before any request runs, a
task list that cannot work is refused in one line: an unknown task (with close matches), a task
the model's family cannot answer (a masked LM writes no text), ``num_fewshot`` larger than a
task's pool of examples, or a hub task whose data is neither on disk nor downloadable.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.eval.tasks import TASKS, close_matches, expand, is_local, task_directory

log = logging.getLogger(__name__)
INSTALL = ("zoo eval: lm-evaluation-harness is not installed: pip install -e '.[eval]' "
           "(or pip install 'lm-eval>=0.4.13')")


def require_lm_eval() -> None:
    """One line saying what to install when lm-eval is missing."""
    import importlib.util

    if importlib.util.find_spec("lm_eval") is None:
        raise ValueError(INSTALL)


def offline_by_default() -> None:
    """Nothing downloads unless the user says so: Hugging Face's offline switches default to on
    (``HF_DATASETS_OFFLINE=0`` lets hub tasks such as HellaSwag download)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def task_manager(names: Sequence[str], cache_dir: str | None = None) -> Any:
    """lm-eval's ``TaskManager`` with the zoo's local tasks, and lm-eval's own (an index of
    thousands of YAML files, some seconds to build) only when a name is not local."""
    from lm_eval.tasks import TaskManager

    local_only = all(is_local(name) for name in names)
    return TaskManager(include_path=str(task_directory(cache_dir)), include_defaults=not local_only)


def load_tasks(names: Sequence[str], manager: Any) -> dict[str, Any]:
    """Task name -> lm-eval ``Task`` for ``names`` (tags and groups expanded).

    Raises:
        ValueError: (one line) an unknown name, with close matches; or a task whose data cannot be read.
    """
    known = set(manager.all_tasks)
    for name in names:
        if name not in known:
            raise ValueError(f"zoo eval: unknown task {name!r}{close_matches(name, sorted(known))}; local tasks: "
                             f"{', '.join(TASKS)} (lm_eval ls tasks lists lm-eval's)")
    tasks: dict[str, Any] = {}
    for name in names:
        try:
            loaded = manager.load([name])
        except Exception as error:  # datasets' offline and missing-file errors run over many lines
            first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
            hint = "" if is_local(name) else (" (its data is on the Hugging Face Hub: set HF_DATASETS_OFFLINE=0 "
                                               "to download it, or put a copy in the datasets cache; see the README)")
            raise ValueError(f"zoo eval: task {name!r} cannot be loaded: {first}{hint}") from None
        tasks.update(loaded["tasks"])
    return tasks


def check_tasks(tasks: dict[str, Any], shape: str, family: str, num_fewshot: int | None) -> None:
    """Refuse, in one line, a task the family cannot answer or a few-shot count beyond a task's pool."""
    for name, task in tasks.items():
        if shape == "encoder" and task.get_config("output_type") == "generate_until":
            raise ValueError(f"zoo eval: {name} is a generation task (generate_until), and a {family} model is a "
                             "masked LM: it predicts tokens behind [MASK] but writes no continuation; choose "
                             "multiple-choice or loglikelihood tasks (e.g. zoo_cloze, zoo_next_sentence)")
        if num_fewshot:
            if task.get_config("output_type") == "loglikelihood_rolling":
                raise ValueError(f"zoo eval: {name} scores whole texts (loglikelihood_rolling) and takes no few-shot "
                                 f"examples; --num_fewshot {num_fewshot} applies to the other tasks only: run it "
                                 "separately")
            pool = len(task.fewshot_docs())
            from_test = not (task.has_training_docs() or task.has_validation_docs() or task.config.fewshot_split)
            pool -= int(from_test)  # the document being asked is never its own example
            if num_fewshot > pool:
                raise ValueError(f"zoo eval: --num_fewshot {num_fewshot} is larger than the {pool} examples {name} "
                                 "can draw few-shot examples from; use at most that many")


def prepare(names: Sequence[str], cache_dir: str | None = None) -> tuple[Any, dict[str, Any]]:
    """``(task manager, tasks)`` for ``names`` (tags expanded), refusing unknown names in one line."""
    require_lm_eval()
    names = expand(names)
    manager = task_manager(names, cache_dir)
    return manager, load_tasks(names, manager)


def evaluate(
    lm: Any, names: Sequence[str], *, num_fewshot: int | None = None, limit: float | None = None,
    cache_dir: str | None = None, seed: int = 1234, bootstrap_iters: int = 1000, quiet: bool = False,
    prepared: tuple[Any, dict[str, Any]] | None = None, reseed: bool = True,
) -> dict[str, Any]:
    """lm-eval's results dict of ``lm`` (a ``ZooLM``) on the tasks ``names``.

    Args:
        lm: The model, as lm-eval's ``LM``.
        names: Task, tag or group names (local ones, or lm-eval's own).
        num_fewshot: Examples before each question (default: each task's own, else 0).
        limit: Items per task at most (a fraction when < 1).
        cache_dir: Zoo cache root for the task directory (default: $ZOO_CACHE_DIR or ~/.cache/zoo).
        seed: Seeds lm-eval's Python, NumPy, torch and few-shot samplers.
        bootstrap_iters: Bootstrap resamples for standard errors of non-mean metrics.
        quiet: Hide lm-eval's progress and log lines (the in-training callback).
        prepared: What ``prepare(names)`` returned, to reuse instead of loading the tasks again.
        reseed: Seed Python's, NumPy's and torch's global generators with ``seed`` (lm-eval's
            default); False leaves them alone (seeding only the few-shot sampler), for evaluations
            inside a training run.
    """
    require_lm_eval()
    from lm_eval import simple_evaluate

    manager, tasks = prepared if prepared is not None else prepare(names, cache_dir)
    check_tasks(tasks, lm.shape, type(lm.model).__name__, num_fewshot)
    level = logging.getLogger("lm_eval").level
    if quiet:
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        results = simple_evaluate(
            model=lm, tasks=list(tasks.values()), num_fewshot=num_fewshot, limit=limit,
            random_seed=seed if reseed else None, numpy_random_seed=seed if reseed else None,
            torch_random_seed=seed if reseed else None, fewshot_random_seed=seed,
            bootstrap_iters=bootstrap_iters, task_manager=manager,
        )
    finally:
        logging.getLogger("lm_eval").setLevel(level)
    return results


def scores(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, metric): value, its standard error, and the chance level where one exists."""
    rows = []
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filter_name = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            chance = TASKS[task].chance.get(metric) if task in TASKS else None
            rows.append({"task": task, "metric": metric, "filter": filter_name, "value": float(value),
                         "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                         "chance": chance, "n_shot": results.get("n-shot", {}).get(task, 0),
                         "items": results.get("n-samples", {}).get(task, {}).get("effective")})
    return rows


def table(results: dict[str, Any]) -> str:
    """A short markdown table of ``results``: task, shots, items, metric, value ± stderr, chance."""
    lines = ["| task | shots | items | metric | value | ± stderr | chance |", "|---|---|---|---|---|---|---|"]
    for row in scores(results):
        stderr = "" if row["stderr"] is None or math.isnan(row["stderr"]) else f"{row['stderr']:.4f}"
        chance = "" if row["chance"] is None else f"{row['chance']:.2f}"
        lines.append(f"| {row['task']} | {row['n_shot']} | {row['items'] or ''} | {row['metric']} | "
                     f"{row['value']:.4f} | {stderr} | {chance} |")
    return "\n".join(lines)


def output_file(checkpoint: str | os.PathLike[str], output_path: str | os.PathLike[str] | None = None) -> Path:
    """Where ``zoo eval`` writes results (lm-eval adds ``_<date>`` to the name): ``output_path`` if
    it names a ``.json`` file, else ``<name>.json`` in the directory it names, else in ``eval/`` of the
    checkpoint's run (the parent of its directory: ``runs/x/checkpoints/last.ckpt`` ->
    ``runs/x/eval/last.json``; an export directory's own ``eval/``)."""
    path = Path(checkpoint)
    name = path.name if path.is_dir() else path.stem
    if output_path is not None:
        output = Path(output_path)
        return output if output.suffix == ".json" else output / f"{name}.json"
    run = path if path.is_dir() else path.resolve().parent.parent
    return run / "eval" / f"{name}.json"


def check_output(output: str | os.PathLike[str]) -> Path:
    """Create the directory a results file (``output_file``) will go to, or refuse in one line."""
    output = Path(output)
    directory = output.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".zoo-eval-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"zoo eval: cannot write results to {directory} ({error.strerror or error}); "
                         "pass --output_path with a writable place") from None
    return output


def write_results(results: dict[str, Any], output: str | os.PathLike[str]) -> Path:
    """Write lm-eval's results JSON with lm-eval's own tracker, as ``<stem>_<date>.json`` beside the
    ``.json`` path ``output``; returns the file."""
    from lm_eval.loggers import EvaluationTracker

    output = check_output(output)
    tracker = EvaluationTracker(output_path=str(output))
    before = set(output.parent.glob("*.json"))
    tracker.save_results_aggregated(results=dict(results), samples=None)
    written = sorted(set(output.parent.glob(f"{output.stem}_*.json")) - before)
    if not written:  # lm-eval logs a failed write instead of raising
        raise ValueError(f"zoo eval: lm-eval wrote no results file under {output} (see its log above)")
    return written[-1]

