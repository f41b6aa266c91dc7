"""Runs that die: kill -9 at a random step, SIGTERM / SIGINT, a loss that turns NaN. The killed and
signalled runs are subprocesses; each is resumed and must end where the uninterrupted run ends."""

from __future__ import annotations

import logging
import random
import re
import signal
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import main, run

from .conftest import EVERY, STEPS, assert_same_weights, callbacks, fit_args, start_zoo, wait_for_step, weights
from .recorder import read_steps

DELAY = 0.2  # seconds per step in the subprocesses, so a signal lands mid-run
CHECKPOINTS = Path("runs/gpt_clm/version_0/checkpoints")  # the run directory of configs/gpt_clm.yaml


@pytest.fixture(scope="module")
def reference(corpus, zoo_cache, tmp_path_factory) -> tuple[dict[int, dict], dict[str, torch.Tensor]]:
    """The uninterrupted run: every step's record and the final weights."""
    directory = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses (module fixtures set up before _one_thread)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setenv("ZOO_CACHE_DIR", str(zoo_cache))
        run([*fit_args("clm", corpus), *callbacks(directory)])
    torch.set_num_threads(threads)
    steps = read_steps(directory / "steps.jsonl")
    assert sorted(steps) == list(range(1, STEPS + 1))
    return steps, weights(directory / CHECKPOINTS / "last.ckpt")


def _resume_and_compare(workdir: Path, corpus: Path, reference) -> None:
    """Resume with --ckpt_path last, appending to the same record: every step run twice must agree
    with itself (read_steps checks) and with the uninterrupted run."""
    run([*fit_args("clm", corpus), *callbacks(workdir), "--ckpt_path", "last"])
    ref_steps, ref_weights = reference
    assert read_steps(workdir / "steps.jsonl") == ref_steps
    assert_same_weights(weights(workdir / CHECKPOINTS / "last.ckpt"), ref_weights)


def test_kill_9_at_a_random_step_then_resume_is_exact(workdir, corpus, zoo_cache, reference):
    kill_after = random.randint(EVERY + 1, STEPS - 5)  # after the first periodic checkpoint, well before the end
    process = start_zoo([*fit_args("clm", corpus), *callbacks(workdir, delay=DELAY)], cwd=workdir, zoo_cache=zoo_cache)
    wait_for_step(process, workdir / "steps.jsonl", kill_after)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    killed_at = max(read_steps(workdir / "steps.jsonl"))
    saved = torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"]
    # The newest periodic save, or the one before when the kill hit the writing of a new one.
    assert saved % EVERY == 0 and killed_at - 2 * EVERY < saved <= killed_at, (kill_after, killed_at, saved)
    _resume_and_compare(workdir, corpus, reference)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_the_current_step_exits_128_plus_signal_and_resumes_exactly(
    workdir, corpus, zoo_cache, reference, signum, status
):
    signal_after = random.randint(2, STEPS - 5)
    process = start_zoo([*fit_args("clm", corpus), *callbacks(workdir, delay=DELAY)], cwd=workdir, zoo_cache=zoo_cache)
    wait_for_step(process, workdir / "steps.jsonl", signal_after)
    process.send_signal(signum)
    assert process.wait(timeout=120) == status, (workdir / "zoo.log").read_text()[-3000:]
    stopped_at = max(read_steps(workdir / "steps.jsonl"))
    assert stopped_at < STEPS
    # Saved at the step it stopped, not at the last periodic one.
    assert torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"] == stopped_at
    _resume_and_compare(workdir, corpus, reference)


# 6 training batches an epoch (conftest): step 6 ends epoch 0; step 12 ends epoch 1 and validates.
@pytest.mark.parametrize("step", [6, 12], ids=["epoch-end", "epoch-end-validating"])
def test_a_signal_at_an_epochs_last_batch_resumes_into_the_next_epoch_exactly(workdir, corpus, reference, step,
                                                                               caplog):
    # Stopped after an epoch's last batch, Lightning's loop has already closed the epoch: a checkpoint
    # written then resumed into a one-batch epoch that skipped the next epoch's data. (No periodic save
    # at these steps: that one resumed well.)
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    with pytest.raises(SystemExit) as exited:
        run([*fit_args("clm", corpus, "--last_checkpoint.every_n_train_steps", "5"),
             *callbacks(workdir, signal_at=step)])
    assert exited.value.code == 143
    assert max(read_steps(workdir / "steps.jsonl")) == step
    assert torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"] == step
    assert f"Stopped by a signal at step {step}; saved " in caplog.text
    _resume_and_compare(workdir, corpus, reference)


@pytest.mark.slow
def test_a_signal_at_any_step_resumes_exactly(workdir, corpus, reference, monkeypatch):
    """Every step a stop can land on — epoch ends, validation steps, a periodic save's step, the short
    last batch — saves that step and resumes to the uninterrupted run's weights, step records and data."""
    for step in range(1, STEPS):
        directory = workdir / f"stop-{step}"
        directory.mkdir()
        monkeypatch.chdir(directory)
        with pytest.raises(SystemExit) as exited:
            run([*fit_args("clm", corpus, "--last_checkpoint.every_n_train_steps", "5"),
                 *callbacks(directory, signal_at=step)])
        assert exited.value.code == 143, step
        assert torch.load(directory / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"] == step
        _resume_and_compare(directory, corpus, reference)


# lr 1e6 diverges at once, lr 100 some steps in: past the last periodic save.
@pytest.mark.parametrize(("lr", "every"), [("1e6", 1), ("100", 3)], ids=["saved-every-step", "saved-every-3"])
def test_nan_loss_stops_at_once_naming_step_value_and_last_good_checkpoint(workdir, corpus, monkeypatch, caplog,
                                                                            lr, every):
    args = [*fit_args("clm", corpus, "--model.init_args.lr", lr, "--last_checkpoint.every_n_train_steps", str(every)),
            *callbacks(workdir)]
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    caplog.set_level(logging.INFO, logger="lightning.pytorch")  # whatever an earlier test left it at
    with pytest.raises(SystemExit) as exited:
        main()
    message = exited.value.code
    assert isinstance(message, str), "the console script exits 1 with this line"
    match = re.fullmatch(r"zoo: error: training loss is (nan|inf|-inf) at step (\d+) \(epoch \d+\); stopped before "
                         r"updating the weights, nothing saved; last good checkpoint: (\S+) \(step (\d+)\)", message)
    assert match, message
    step, good, good_step = int(match[2]), Path(match[3]), int(match[4])
    assert max(read_steps(workdir / "steps.jsonl")) == step, "no step ran after the non-finite loss"
    assert good == (workdir / CHECKPOINTS / "last.ckpt").resolve() and good_step == step - step % every > 0
    assert torch.load(good, weights_only=True)["global_step"] == good_step
    # The run's closing line names the step last.ckpt holds, not the step the run failed at.
    assert f"(failed, step {step}); resume with --ckpt_path last (last.ckpt at step {good_step})" in caplog.text
    for checkpoint in (workdir / CHECKPOINTS).glob("*.ckpt"):
        assert all(torch.isfinite(t).all() for t in weights(checkpoint).values()), checkpoint
