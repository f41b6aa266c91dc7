"""Compare architectures on tasks: a study file → ``zoo fit`` runs → a table you can trust.

A study trains every entry (a family, or a family with ablation overrides) on every task, for each
seed, and every such run is a ``zoo fit`` run: the family's zoo fit task, the task's zoo fit data
module, the same recipe for all, and a matched budget — the same non-embedding parameter count (sizes
searched automatically; a mixture of experts matches the parameters a token runs), or the same
training tokens or FLOPs (``zoo.flops``). Each run lives in its own run directory
(``<output_dir>/runs/<task>/<entry>[/<grid point>]/seed<k>/``, see ``zoo.runs``) with the ``fit.yaml``
that retrains it alone. Every entry is compared with the study's ``baseline`` on the same seeds
(paired: the same split, data order and initialisation seed), with a 95 % interval, Holm's
correction across a table and a verdict — better / worse / negligible / no detectable difference /
inconclusive — beside the smallest difference the seeds could detect. ``results.json`` holds every
number; ``results.md``, ``results.csv`` and ``plots/`` are drawn from it (``zoo compare report``).

One concern per module:

- ``config``: the study file → ``Comparison`` (entries, tasks, budget, training recipe, grids,
  baseline); ``metrics``: each metric's direction, unit and default smallest effect.
- ``tasks``: the task names → zoo fit data modules; ``budget``: parameter counts and size matching.
- ``plan``: the study expanded into runs (fit configs, sizes, steps a budget buys, paired seeds,
  grid points), all checked first.
- ``launch``: the runs trained — ``local`` processes (``--jobs N``) or a SLURM array via submitit;
  ``job``: one run (fit, then the final validation and test), resumable.
- ``results``: each run read back from its directory; ``grid``: each entry's grid value chosen on
  validation; ``statistics``: paired verdicts, noise floor, budget warnings; ``report``: results.md,
  plots and a README table from ``results.json``.

The file format (every key but ``tasks`` and one of ``families`` / ``entries`` is optional)::

    name: seq2seq_families
    output_dir: runs/compare/seq2seq_families   # default runs/compare/<name>
    seeds: [0, 1, 2]                            # or a count: 3
    families: [t5, gpt, bert]                   # shorthand for entries named by family
    entries:                                    # ... or explicit ones
      - {name: t5-deep, family: t5, config: {num_layers: 3}, tasks: [copy], train: {lr: 1.0e-3}}
    model: {num_layers: 2, num_heads: 4, dropout: 0.0}   # config fields shared by every entry
    variants:                                   # ablations: each entry × each variant
      - {name: rmsnorm, config: {norm: rmsnorm}, only: [gpt]}   # only: cross with these entries alone
    sweep: {position: [learned, rotary, alibi]} # shorthand: one variant per value
    tasks: [copy, {type: addition, max_len: 3}] # see zoo.compare.tasks.TASK_TYPES
    budget: {params: 100000, tolerance: 0.1, match: [embed_dim, ffn_dim], tokens: null, flops: null}
    train: {max_steps: 600, batch_size: 32, lr: [1.0e-3, 2.0e-3, 4.0e-3], val_every: 150}   # a list: a grid
    tune: {seeds: 1, metric: null}              # grids run on the first seed; the best validation value wins
    baseline: t5                                # an entry (or, with variants crossed, a variant of each)
    smallest_effect: {bpb: 0.005, accuracy: 0.005}   # per metric (val_/test_ prefix: one split); defaults
    repeat_baseline: 1                          # the noise floor: the baseline again, other initialisation
    eval: {tasks: [zoo_cloze], limit: 200, num_fewshot: null, batch_size: 32}   # lm-eval tasks (zoo.eval), for
                                                # a study with an lm task: its runs' final weights scored
                                                # once per request; zoo_cloze/acc, ... compared as metrics

Bad input (unknown key, family, task, option or config field; a grid over a key that does not exist;
a baseline that is not an entry; a baseline with fewer than 3 seeds; a task a family cannot run; an
eval task unknown to lm-eval (close matches named), one a family cannot answer, an eval request on a
study without an lm task, a bad limit / num_fewshot / batch_size, or lm-eval not installed; a budget no
size reaches; a data file missing its fields; a run directory holding another config; an
unknown launcher) fails with one line before anything trains."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zoo.compare.budget import match_parameters, non_embedding_parameters
from zoo.compare.config import Budget, Comparison, Entry, TrainSettings, Tune, load_comparison, study_settings
from zoo.compare.grid import choose
from zoo.compare.launch import check_launcher, launch_runs, threads_per_job
from zoo.compare.plan import Run, plan, waiting
from zoo.compare.report import markdown_report, render, write_readme, write_reports
from zoo.compare.results import prepare, read_result
from zoo.compare.statistics import analyse


def _size_line(run: Run) -> str:
    from zoo.compare.metrics import si
    from zoo.compare.report import _params

    return (f"{_params({'params': run.params, 'active_params': run.active_params})} non-embedding params, "
            f"{run.steps} steps, {si(run.tokens)} tokens, {si(run.flops)} FLOPs")


def run_comparison(
    comparison: Comparison,
    *,
    fresh: bool = False,
    dry_run: bool = False,
    only: Sequence[str] = (),
    launcher: str = "local",
    jobs: int = 1,
    slurm: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
    cache_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Plan the study, train the runs not finished yet, and write the reports.

    A study with grids trains in two rounds: every grid point on the tuning seeds, then — each entry's
    value chosen on validation (``zoo.compare.grid``) — its other seeds (and the baseline's repeats) at
    that value.

    Args:
        comparison: From ``load_comparison``.
        fresh: Delete what the planned runs' directories hold and train them all again.
        dry_run: Check and plan only: print each run and its size, train nothing.
        only: Train only the runs whose ``<task>/<entry>[/<point>]/seed<k>`` matches one of these globs
            (the report covers every finished run of the study).
        launcher: ``local`` or ``slurm`` (``zoo.compare.launch``).
        jobs: Runs at once.
        slurm: ``submitit`` executor parameters for ``launcher="slurm"``.
        log: Where progress lines go.
        cache_dir: Tokenizer cache (default ``$ZOO_CACHE_DIR`` or ``~/.cache/zoo``).
        command: The command line, recorded in ``results.json`` (and the README table).

    Returns:
        The result records of the study's finished runs (grid points that lost included).
    """
    check_launcher(launcher, jobs)
    settings = study_settings(comparison)
    runs = plan(comparison, cache_dir)  # refuses bad input before anything trains
    grids = waiting(comparison, {}) > 0

    def results(planned: list[Run]) -> list[dict[str, Any]]:
        return [r for r in map(read_result, planned) if r is not None]

    def selected(planned: list[Run]) -> list[Run]:
        return [r for r in planned if not only or any(fnmatch.fnmatchcase(r.name, g) for g in only)]

    if only and not grids and not selected(runs):
        raise ValueError(f"--only {' '.join(only)} matches no run; runs are named like {runs[0].name!r}")
    if dry_run:
        if grids:  # what earlier rounds chose is known; the rest waits for the grid
            runs = plan(comparison, cache_dir, choose(settings, results(runs))[0])
        _print_plan(selected(runs), log)
        later = waiting(comparison, choose(settings, results(runs))[0])
        if later:
            log(f"then {later} more run(s) at each entry's chosen grid value (each as large as its grid runs), once "
                f"the grid has run on seed(s) {', '.join(map(str, settings['tune']['seeds']))}")
        return []
    threads = threads_per_job(jobs, comparison.train.threads)
    _train(selected(runs), comparison, fresh=fresh, launcher=launcher, jobs=jobs, threads=threads, log=log,
           slurm=slurm)
    if grids:  # the second round: each entry's other seeds (and the repeats) at its chosen value
        done = {r.name for r in runs}
        runs = plan(comparison, cache_dir, choose(settings, results(runs))[0])
        _train(selected([r for r in runs if r.name not in done]), comparison, fresh=fresh, launcher=launcher,
               jobs=jobs, threads=threads, log=log, slurm=slurm)
    records = results(runs)
    missing = len(runs) - len(records) + waiting(comparison, choose(settings, records)[0])
    write_reports(settings, records, comparison.output_dir, missing=missing, command=command)
    log(f"results: {comparison.output_dir / 'results.md'} (table), results.csv, results.json, plots/")
    return records


def _train(runs: list[Run], comparison: Comparison, *, fresh: bool, launcher: str, jobs: int, threads: int,
           log: Callable[[str], None], slurm: Mapping[str, Any] | None) -> None:
    """Write the runs' fit configs and train those not finished yet."""
    prepare(runs, fresh, threads, comparison.eval)  # refuses a run directory of another config before anything trains
    pending = [run for run in runs if read_result(run) is None]
    if len(pending) < len(runs):
        log(f"{len(runs) - len(pending)} of {len(runs)} run(s) finished earlier: skipped")
    if pending:
        launch_runs(pending, launcher=launcher, jobs=jobs, threads=threads, log=log, done=read_result, options=slurm,
                    folder=comparison.output_dir / "slurm")


def _print_plan(runs: list[Run], log: Callable[[str], None]) -> None:
    from zoo.compare.metrics import si

    for i, run in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {run.name}: {_size_line(run)}")
    if runs:
        log(f"{len(runs)} run(s): {si(sum(r.tokens for r in runs))} training tokens, {si(sum(r.flops for r in runs))} "
            f"training FLOPs in all")


__all__ = [
    "Budget",
    "Comparison",
    "Entry",
    "Run",
    "TrainSettings",
    "Tune",
    "analyse",
    "choose",
    "load_comparison",
    "markdown_report",
    "match_parameters",
    "non_embedding_parameters",
    "plan",
    "render",
    "run_comparison",
    "study_settings",
    "write_readme",
    "write_reports",
]
