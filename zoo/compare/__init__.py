"""Compare architectures on tasks: a study file → ``zoo fit`` runs → a fair table and plots.

A study trains every entry (a family, or a family with ablation overrides) on every task, for each
seed, and every such run is a ``zoo fit`` run: the family's zoo fit task, the task's zoo fit data
module, the same recipe for all, and a matched budget — the same non-embedding parameter count (sizes
searched automatically; a mixture of experts matches the parameters a token runs), or the same
training tokens or FLOPs (``zoo.flops``). Each run lives in its own run directory
(``<output_dir>/runs/<task>/<entry>/seed<k>/``, see ``zoo.runs``) with the ``fit.yaml`` that retrains
it alone; ``results.csv``, ``results.json``, ``results.md`` (mean ± std over seeds) and
``plots/<task>.png`` are drawn from the run directories.

One concern per module:

- ``config``: the study file → ``Comparison`` (entries, tasks, budget, training recipe).
- ``tasks``: the task names → zoo fit data modules; ``budget``: parameter counts and size matching.
- ``plan``: the study expanded into runs (fit configs, sizes, steps a budget buys), all checked first.
- ``launch``: the runs trained — ``local`` processes (``--jobs N``) or a SLURM array via submitit;
  ``job``: one run (fit, then the final validation and test), resumable.
- ``results``: each run read back from its directory; ``report``: tables and plots.

The file format (every key but ``tasks`` and one of ``families`` / ``entries`` is optional)::

    name: seq2seq_families
    output_dir: runs/compare/seq2seq_families   # default runs/compare/<name>
    seeds: [0, 1]                               # or a count: 2
    families: [t5, gpt, bert]                   # shorthand for entries named by family
    entries:                                    # ... or explicit ones
      - {name: t5-deep, family: t5, config: {num_layers: 3}, tasks: [copy]}
    model: {num_layers: 2, num_heads: 4, dropout: 0.0}   # config fields shared by every entry
    variants:                                   # ablations: each entry × each variant
      - {name: rmsnorm, config: {norm: rmsnorm}}
    sweep: {position: [learned, rotary, alibi]} # shorthand: one variant per value
    tasks: [copy, {type: addition, max_len: 3}] # see zoo.compare.tasks.TASK_TYPES
    budget: {params: 100000, tolerance: 0.1, match: [embed_dim, ffn_dim], tokens: null, flops: null}
    train: {max_steps: 600, batch_size: 32, lr: 1.0e-3, val_every: 150}

Bad input (unknown key, family, task, option or config field; a task a family cannot run; a
budget no size reaches; a data file missing its fields; a run directory holding another config;
an unknown launcher) fails with one line before anything trains.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zoo.compare.budget import match_parameters, non_embedding_parameters
from zoo.compare.config import Budget, Comparison, Entry, TrainSettings, load_comparison
from zoo.compare.launch import check_launcher, launch_runs, threads_per_job
from zoo.compare.plan import Run, plan
from zoo.compare.report import markdown_table, plot_curves, write_reports
from zoo.compare.results import prepare, read_result


def _size_line(run: Run) -> str:
    from zoo.compare.report import _params, _si

    return (f"{_params({'params': run.params, 'active_params': run.active_params})} non-embedding params, "
            f"{run.steps} steps, {_si(run.tokens)} tokens, {_si(run.flops)} FLOPs")


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
) -> list[dict[str, Any]]:
    """Plan the study, train the runs not finished yet, and write the reports.

    Args:
        comparison: From ``load_comparison``.
        fresh: Delete what the planned runs' directories hold and train them all again.
        dry_run: Check and plan only: print each run and its size, train nothing.
        only: Train only the runs whose ``<task>/<entry>/seed<k>`` matches one of these globs (the
            report covers every finished run of the study).
        launcher: ``local`` or ``slurm`` (``zoo.compare.launch``).
        jobs: Runs at once.
        slurm: ``submitit`` executor parameters for ``launcher="slurm"``.
        log: Where progress lines go.
        cache_dir: Tokenizer cache (default ``$ZOO_CACHE_DIR`` or ``~/.cache/zoo``).

    Returns:
        The result records of the study's finished runs.
    """
    check_launcher(launcher, jobs)
    runs = plan(comparison, cache_dir)
    chosen = [r for r in runs if not only or any(fnmatch.fnmatchcase(r.name, g) for g in only)]
    if only and not chosen:
        raise ValueError(f"--only {' '.join(only)} matches no run; runs are named like {runs[0].name!r}")
    if dry_run:
        for i, run in enumerate(chosen, 1):
            log(f"[{i}/{len(chosen)}] {run.name}: {_size_line(run)}")
        return []
    threads = threads_per_job(jobs, comparison.train.threads)
    prepare(chosen, fresh, threads)  # refuses a run directory of another config before anything trains
    pending = [run for run in chosen if read_result(run) is None]
    if len(pending) < len(chosen):
        log(f"{len(chosen) - len(pending)} of {len(chosen)} run(s) finished earlier: skipped")
    if pending:
        launch_runs(pending, launcher=launcher, jobs=jobs, threads=threads, log=log, done=read_result, options=slurm,
                    folder=comparison.output_dir / "slurm")
    records = [r for r in (read_result(run) for run in runs) if r is not None]
    write_reports(comparison, records, missing=len(runs) - len(records))
    log(f"results: {comparison.output_dir / 'results.md'} (table), results.csv, results.json, plots/")
    return records


__all__ = [
    "Budget",
    "Comparison",
    "Entry",
    "Run",
    "TrainSettings",
    "load_comparison",
    "markdown_table",
    "match_parameters",
    "non_embedding_parameters",
    "plan",
    "plot_curves",
    "run_comparison",
    "write_reports",
]
