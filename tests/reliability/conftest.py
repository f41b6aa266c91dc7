"""Shared setup of the "never lose a run" tests: a tiny corpus whose epochs are a few steps long (so
runs cross epoch ends, some with a short last batch), the CLI run in-process or as a subprocess, and
one thread everywhere, so in-process and subprocess runs compute bit for bit the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "debug" / "smoke.yaml"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
# 20 lines, char tokenizer, 32-token sequences, batches of 4: 6 training batches per epoch for every
# objective — the last one short (2 of 4) for clm and span, full for mlm.
NUM_LINES = 20
STEPS = 14  # epochs 0, 1 and 2
EVERY = 3  # --last_checkpoint.every_n_train_steps
FAMILY_CONFIG = {"clm": "gpt_clm", "mlm": "bert_mlm", "span": "t5_span"}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    lines = (" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(5 + i % 8)) for i in range(NUM_LINES))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture
def workdir(tmp_path, zoo_cache, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(zoo_cache))
    return tmp_path


def fit_args(objective: str, corpus: Path, *extra: str, steps: int = STEPS) -> list[str]:
    """`zoo fit` arguments of a tiny run of `objective` on `corpus`; the schedule length is pinned, so
    runs with other --trainer.max_steps follow the same learning rates."""
    return [
        "fit", "--config", str(REPO / "configs" / f"{FAMILY_CONFIG[objective]}.yaml"), "--config", str(SMOKE),
        "--data.init_args.data_files", str(corpus), "--data.init_args.tokenizer", "char",
        "--data.init_args.val_fraction", "0.1",
        "--trainer.max_steps", str(steps), "--model.init_args.max_steps", str(steps),
        "--trainer.val_check_interval", "4", "--last_checkpoint.every_n_train_steps", str(EVERY),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        *extra,
    ]


def callbacks(directory: Path, *, delay: float = 0.0, keep_every_step: bool = False,
              signal_at: int | None = None) -> list[str]:
    """A config overlay adding the step recorder (and a checkpoint of every step, and a SIGTERM as
    step ``signal_at`` starts) to a run."""
    entries = [{"class_path": "reliability.recorder.StepRecorder",
                "init_args": {"path": str(directory / "steps.jsonl"), "delay": delay}}]
    if keep_every_step:
        entries.append({"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                        "init_args": {"dirpath": str(directory / "every_step"), "every_n_train_steps": 1,
                                      "save_top_k": -1, "filename": "{step}"}})
    if signal_at is not None:
        entries.append({"class_path": "reliability.recorder.SignalAt", "init_args": {"step": signal_at}})
    path = directory / "callbacks.yaml"
    path.write_text(json.dumps({"trainer": {"callbacks": entries}}))
    return ["--config", str(path)]


def zoo_env(zoo_cache: Path) -> dict[str, str]:
    tests = str(REPO / "tests")
    return {**os.environ, "ZOO_CACHE_DIR": str(zoo_cache), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}


def start_zoo(args: list[str], *, cwd: Path, zoo_cache: Path) -> subprocess.Popen:
    log = open(cwd / "zoo.log", "w")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=zoo_env(zoo_cache),
                            stdout=log, stderr=subprocess.STDOUT, text=True)


def run_zoo(args: list[str], *, cwd: Path, zoo_cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=zoo_env(zoo_cache),
                          capture_output=True, text=True, timeout=timeout)


def wait_for_step(process: subprocess.Popen, steps_file: Path, step: int, timeout: float = 300) -> None:
    """Block until the run has recorded `step` (it must still be running then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = steps_file.read_text() if steps_file.exists() else ""
        complete = text[: text.rfind("\n") + 1].splitlines()  # a line being written is not read yet
        if complete and max(json.loads(line)["step"] for line in complete) >= step:
            return
        if process.poll() is not None:
            log = (steps_file.parent / "zoo.log").read_text()[-3000:]
            pytest.fail(f"the run ended (rc {process.returncode}) before step {step}:\n{log}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    pytest.fail(f"no step {step} within {timeout} s")


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"weights differ bitwise: {differing[:5]}"
