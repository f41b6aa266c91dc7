"""Launchers: how the runs of a study get trained. Each run is a job (``zoo.compare.job``: ``zoo fit``
on its ``fit.yaml`` into its run directory, then the final validation and test), whichever way:

- ``local``: up to ``jobs`` runs at once, each its own process with its own share of the CPU threads
  (``OMP_NUM_THREADS`` and torch's intra-op pool), logging to ``<run>/job.log``.
- ``slurm``: a SLURM job array through ``submitit`` (``pip install 'zoo[cluster]'``), at most ``jobs``
  running at once; the scheduler's warning before the time limit stops a run with ``last.ckpt`` saved
  and requeues it, and the requeued job resumes. ``options`` go to ``AutoExecutor.update_parameters``
  (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ...; ``cluster=local`` runs the same code on
  this machine through submitit's local executor).

A run already finished is not launched again; one that was killed resumes from its last checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo.compare.plan import Run

Log = Callable[[str], None]
LAUNCHERS = ("local", "slurm")


def check_launcher(launcher: str, jobs: int) -> None:
    """One line, before anything is planned, for a launcher that cannot run."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {launcher!r} is not a launcher; choose one of {list(LAUNCHERS)}")
    if jobs < 1:
        raise ValueError(f"--jobs {jobs} must be at least 1 (runs at once)")
    if launcher == "slurm" and importlib.util.find_spec("submitit") is None:
        raise ValueError("--launcher slurm submits through submitit, which is not installed; "
                         "pip install 'zoo[cluster]' (or pip install 'submitit>=1.5')")


def threads_per_job(jobs: int, threads: int | None) -> int:
    """The study's ``train.threads``, else this machine's cores shared among the jobs running at once."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def launch_runs(runs: list[Run], *, launcher: str, jobs: int, threads: int, log: Log,
                done: Callable[[Run], Mapping[str, Any] | None], options: Mapping[str, Any] | None = None,
                folder: Path | None = None) -> None:
    """Train every run of ``runs`` (``folder``: where submitit keeps its files); raise one line naming
    the runs that failed, once the others are done."""
    if launcher == "local":
        failed = _local(runs, jobs, threads, log, done)
    else:
        failed = _slurm(runs, jobs, threads, log, done, dict(options or {}), folder or Path("slurm"))
    if failed:
        names = ", ".join(run.name for run in failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise ValueError(f"{len(failed)} run(s) failed: {names}; see job.log in each run directory, then run the "
                           "same command again (finished runs are kept, stopped ones resume)")


def _finished(run: Run, done: Callable[[Run], Mapping[str, Any] | None], log: Log, prefix: str) -> bool:
    from zoo.compare.report import summary_line

    record = done(run)
    if record is not None:
        log(f"{prefix} finished\n{summary_line(record)}")
    return record is not None


def _local(runs: list[Run], jobs: int, threads: int, log: Log, done: Callable[[Run], Any]) -> list[Run]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    queue, running, failed = list(enumerate(runs, 1)), {}, []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                i, run = queue.pop(0)
                with open(run.dir / "job.log", "ab") as out:
                    command = [sys.executable, "-m", "zoo.compare.job", os.fspath(run.dir), "--threads", str(threads)]
                    running[subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)] = (i, run)
                log(f"[{i}/{len(runs)}] {run.label}: started ({run.dir})")
            finished = [p for p in running if p.poll() is not None]
            if not finished:
                time.sleep(0.2)
            for process in finished:
                i, run = running.pop(process)
                if process.returncode != 0 or not _finished(run, done, log, f"[{i}/{len(runs)}] {run.label}:"):
                    failed.append(run)
                    log(f"[{i}/{len(runs)}] {run.label}: failed (exit {process.returncode}): {_last_line(run)}")
    except BaseException:  # Ctrl+C: every job stops after its current step with last.ckpt saved
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            process.wait()
        raise
    return failed


def _last_line(run: Run) -> str:
    lines = [line for line in (run.dir / "job.log").read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("zoo: error", "Traceback"))] or lines
    return errors[-1].strip() if errors else "no output"


def _slurm(runs: list[Run], jobs: int, threads: int, log: Log, done: Callable[[Run], Any],
           options: dict[str, Any], folder: Path) -> list[Run]:
    import submitit

    from zoo.compare.job import CompareJob

    executor = submitit.AutoExecutor(folder=folder, cluster=options.pop("cluster", "slurm"))
    executor.update_parameters(**{"slurm_array_parallelism": jobs, "cpus_per_task": threads, "tasks_per_node": 1,
                                  "name": "zoo-compare", **options})
    submitted = executor.map_array(CompareJob(threads), [os.fspath(r.dir) for r in runs])
    by_id = {job.job_id: (i, run) for i, (job, run) in enumerate(zip(submitted, runs, strict=True), 1)}
    log(f"submitted {len(runs)} run(s) as job array {submitted[0].job_id.split('_')[0]} ({folder})")
    failed = []
    for job in submitit.helpers.as_completed(submitted):
        i, run = by_id[job.job_id]
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - submitit re-raises the job's own failure
            failed.append(run)
            log(f"[{i}/{len(runs)}] {run.label}: failed: {str(error).strip().splitlines()[-1]}")
            continue
        if not _finished(run, done, log, f"[{i}/{len(runs)}] {run.label}:"):
            failed.append(run)
    return failed
