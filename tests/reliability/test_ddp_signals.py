"""Clean stops under DDP whatever gets the signal (``zoo.callbacks.GracefulStop``): rank 0, rank 1 or
every rank at once (what SLURM's scancel, docker stop, Kubernetes and a terminal's Ctrl+C do), SIGTERM
or SIGINT, once or twice in a row. Each trial must end within seconds with a non-zero status, every
rank stopped at the same step, last.ckpt saved at that step and no process left. It is a race, so
the slow suite runs every case; the default suite runs the case that used to hang."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from .conftest import callbacks, fit_args, start_zoo, wait_for_step

CHECKPOINTS = Path("runs/gpt_clm/version_0/checkpoints")
DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(child) for child in text.split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _last_step(path: Path) -> int:
    return max(json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip())


def signal_trial(workdir: Path, corpus: Path, zoo_cache: Path, target: str, signum: int, times: int) -> None:
    args = [*fit_args("clm", corpus, steps=60), *DDP, *callbacks(workdir, delay=0.15)]
    process = start_zoo(args, cwd=workdir, zoo_cache=zoo_cache)
    try:
        wait_for_step(process, workdir / "steps.jsonl", 4, timeout=240)
        deadline = time.monotonic() + 30
        while not (workers := [p for p in _children(process.pid) if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers, "rank 1 was not found"
        pids = {"rank0": [process.pid], "rank1": workers, "all": [process.pid, *workers]}[target]
        for _ in range(times):
            for pid in pids:
                os.kill(pid, signum)
        status = process.wait(timeout=90)
    except BaseException:
        for pid in [process.pid, *_children(process.pid)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        raise
    log = (workdir / "zoo.log").read_text()[-3000:]
    assert status == 128 + signum, f"exit status {status}\n{log}"
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a rank outlived the run"
    stopped = _last_step(workdir / "steps.jsonl")
    assert _last_step(workdir / "steps.rank1.jsonl") == stopped, "the ranks stopped at different steps"
    assert stopped < 60
    saved = torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)
    assert saved["global_step"] == stopped, f"last.ckpt at {saved['global_step']}, stopped at {stopped}\n{log}"
    record = json.loads((workdir / CHECKPOINTS.parent / "run.json").read_text())
    assert record["status"] == "stopped"


CASES = [(target, signum, times) for target in ("all", "rank0", "rank1")
         for signum in (signal.SIGTERM, signal.SIGINT) for times in (1, 2)]


def _id(case: tuple[str, int, int]) -> str:
    target, signum, times = case
    return f"{signal.Signals(signum).name}-to-{target}-x{times}"


def test_sigterm_to_every_rank_at_once_stops_cleanly(workdir, corpus, zoo_cache):
    signal_trial(workdir, corpus, zoo_cache, "all", signal.SIGTERM, 1)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_every_signal_case_stops_cleanly(workdir, corpus, zoo_cache, case):
    signal_trial(workdir, corpus, zoo_cache, *case)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_whole_process_group_spares_the_loader_workers(workdir, corpus, zoo_cache, signum):
    """Ctrl+C in a terminal and SLURM's scancel signal every process of the job, data loader workers
    included: they ignore it, and the run stops after its step as if only the trainer had been told."""
    import subprocess
    import sys

    from .conftest import zoo_env

    args = [*fit_args("clm", corpus, steps=60), "--data.init_args.num_workers", "2", *callbacks(workdir, delay=0.15)]
    log = open(workdir / "zoo.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", *args], cwd=workdir, env=zoo_env(zoo_cache),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_step(process, workdir / "steps.jsonl", 4, timeout=240)
        os.killpg(process.pid, signum)
        assert process.wait(timeout=90) == 128 + signum, (workdir / "zoo.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stopped = _last_step(workdir / "steps.jsonl")
    assert torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"] == stopped
