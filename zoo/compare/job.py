"""One compare run as a job, whichever launcher started it: ``zoo fit`` on the run's ``fit.yaml``
into its run directory (``--ckpt_path last_or_new``: a killed or preempted job resumes its last
checkpoint), then ``zoo validate`` and ``zoo test`` of the final weights (``<run>/validate/``,
``<run>/test/``), then — when the study names ``eval:`` tasks, written to the run's ``eval.json`` — the
final weights scored on them through ``zoo.eval`` (lm-eval's results file and ``eval/scores.json`` in
the run directory; a run already scored with the same request is not scored again), then ``job.json``
(peak memory, threads, the machine, and the code: commit and ``zoo/`` fingerprint,
``zoo.analysis.provenance``). A run whose training loss turns NaN or infinite
(zoo fit's guard stops it) *diverged*: that is a result, not a failure — ``job.json`` says so, and the
study goes on (a grid's too-large learning rate is expected to do it). ::

    python -m zoo.compare.job <run dir> [--threads N]

``CompareJob`` is the same for ``submitit`` (SLURM, or its local executor): when the scheduler's
warning signal arrives before the time limit it stops training the way SIGTERM does (after the
current step, ``last.ckpt`` saved) and hands over to submitit, which requeues the job; the requeued
job resumes from ``last.ckpt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

#: The run's zoo fit config, as the study expanded it.
FIT_FILE = "fit.yaml"
JOB_FILE = "job.json"
#: The study's eval request for this run (``EvalSettings.request``); absent: the run is not scored.
EVAL_FILE = "eval.json"
#: The run's task scores: ``{"request": ..., "scores": {"zoo_cloze/acc": ...}, "results": <lm-eval file>}``.
SCORES_FILE = Path("eval") / "scores.json"


def read_scores(run_dir: str | os.PathLike[str]) -> dict[str, float] | None:
    """The run's task scores for its current eval request; None while it is not scored (or was
    scored with another request); ``{}`` for a run the study does not score."""
    directory = Path(run_dir)
    if not (directory / EVAL_FILE).is_file():
        return {}
    request = json.loads((directory / EVAL_FILE).read_text())
    path = directory / SCORES_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record["scores"] if record.get("request") == request else None


def score(run_dir: str | os.PathLike[str]) -> None:
    """Score the run's final weights on its eval request's tasks (``zoo.eval.run.evaluate``, as
    ``zoo eval`` does), unless they are scored already; lm-eval's results JSON goes to ``<run>/eval/``."""
    directory = Path(run_dir)
    if read_scores(directory) is not None:
        return
    from zoo.checkpoints import run_checkpoint
    from zoo.compare.metrics import TASK_METRICS
    from zoo.eval.harness import ZooLM
    from zoo.eval.run import evaluate, offline_by_default, scores, write_results

    request = json.loads((directory / EVAL_FILE).read_text())
    offline_by_default()
    checkpoint = run_checkpoint(directory, "zoo compare")
    lm = ZooLM(checkpoint=str(checkpoint), batch_size=request["batch_size"], progress=False, what="zoo compare:")
    results = evaluate(lm, request["tasks"], num_fewshot=request["num_fewshot"], limit=request["limit"], quiet=True)
    written = write_results(results, directory / "eval" / f"{checkpoint.stem}.json")
    found = {f"{row['task']}/{row['metric']}": row["value"] for row in scores(results)
             if row["filter"] in ("none", "strip") and row["metric"] in TASK_METRICS}
    record = {"request": request, "scores": found, "results": written.name}
    partial = (directory / SCORES_FILE).with_suffix(".json.tmp")  # a killed job leaves no half-written scores
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(directory / SCORES_FILE)


def _peak_memory_mb() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu peak rss"  # KiB on Linux


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    """What the run ran on: host, CPU model and cores, the GPU's name, torch's version."""
    import torch

    gpu = torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else None
    return {"device": device, "host": socket.gethostname(), "cpu": _cpu_model(), "cpus": os.cpu_count(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}


def run_job(run_dir: str | os.PathLike[str], threads: int | None = None) -> None:
    """Train, validate and test the run in ``run_dir`` (see the module docstring)."""
    import torch

    from zoo.analysis.provenance import provenance
    from zoo.callbacks import NonFiniteLossError
    from zoo.cli import run
    from zoo.speed import reuse_freed_memory

    reuse_freed_memory()  # as every zoo command does
    if threads:
        torch.set_num_threads(threads)
    directory = Path(run_dir)
    given = ["--config", os.fspath(directory / FIT_FILE), "--run.dir", os.fspath(directory)]
    diverged = None
    try:
        device = run(["fit", *given, "--ckpt_path", "last_or_new"]).trainer.strategy.root_device.type
    except NonFiniteLossError as error:
        diverged, device = str(error), "cuda" if torch.cuda.is_available() else "cpu"
    if diverged is None:
        for subcommand in ("validate", "test"):
            run([subcommand, *given, "--ckpt_path", "last"])
        if (directory / EVAL_FILE).is_file():
            score(directory)
    peak, kind = _peak_memory_mb()
    record = {"peak_mem_mb": round(peak, 1), "memory": kind, "threads": torch.get_num_threads(), **machine(device),
              "code": provenance(), **({"diverged": diverged} if diverged else {})}
    (directory / JOB_FILE).write_text(json.dumps(record, indent=1) + "\n")


class CompareJob:
    """``run_job`` as a ``submitit`` callable that stops cleanly and is requeued when the scheduler
    warns of the time limit or of preemption.

    Args:
        threads: PyTorch intra-op threads of the job (None: its default).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, run_dir: str) -> str:
        from submitit import JobEnvironment

        warning = JobEnvironment._usr_sig()  # SIGUSR2 unless the cluster says otherwise
        submitits = signal.getsignal(warning)  # checkpoint_and_try_requeue: calls self.checkpoint, requeues
        warned: list[int] = []

        def stop(signum: int, frame: FrameType | None) -> None:
            warned.append(signum)
            os.kill(os.getpid(), signal.SIGTERM)  # zoo fit stops after this step, saving last.ckpt

        signal.signal(warning, stop)
        try:
            run_job(run_dir, self.threads)
        except SystemExit:
            if warned and callable(submitits):
                submitits(warning, None)  # requeue (and exit); this job resumes where it stopped
            raise
        finally:
            signal.signal(warning, submitits)
        return run_dir

    def checkpoint(self, run_dir: str) -> Any:
        """What submitit resubmits: the same job, which resumes from the run's ``last.ckpt``."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(CompareJob(self.threads), run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.compare.job", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from zoo.cli import expected_error

    try:
        run_job(args.run_dir, args.threads)
    except Exception as error:  # zoo's error policy: one line for what a user can act on, a traceback for a bug
        line = expected_error(error)
        if line is None:
            raise
        print(f"zoo: error: {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
