"""Muon never loses a run either: killed with SIGKILL at a random step and resumed, it ends where the
uninterrupted run ends, bit for bit (its momentum and AdamW's moments are in the checkpoint); under
2-process DDP the same; under FSDP (CPU, gloo) it trains and resumes from one full checkpoint."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
import torch

from zoo.cli import run

from .conftest import (
    EVERY,
    REPO,
    STEPS,
    assert_same_weights,
    callbacks,
    fit_args,
    run_zoo,
    start_zoo,
    wait_for_step,
    weights,
)
from .recorder import read_steps

MUON = ["--config", str(REPO / "configs" / "optim" / "muon.yaml")]
DELAY = 0.2  # seconds per step in the killed subprocess, so the signal lands mid-run
CHECKPOINTS = Path("runs/gpt_clm/version_0/checkpoints")  # the run directory of configs/gpt_clm.yaml


def test_kill_9_with_muon_then_resume_is_exact(workdir, corpus, zoo_cache, tmp_path_factory):
    args = fit_args("clm", corpus, *MUON)
    reference_dir = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(reference_dir)
        run([*args, *callbacks(reference_dir)])
    ref_steps = read_steps(reference_dir / "steps.jsonl")
    ref_weights = weights(reference_dir / CHECKPOINTS / "last.ckpt")
    saved = torch.load(reference_dir / CHECKPOINTS / "last.ckpt", weights_only=True)["optimizer_states"][0]
    assert {g["optimizer"] for g in saved["param_groups"]} == {"muon", "adamw"}

    kill_after = random.randint(EVERY + 1, STEPS - 5)
    process = start_zoo([*args, *callbacks(workdir, delay=DELAY)], cwd=workdir, zoo_cache=zoo_cache)
    wait_for_step(process, workdir / "steps.jsonl", kill_after)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    killed_at = max(read_steps(workdir / "steps.jsonl"))
    resumed_from = torch.load(workdir / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"]
    assert resumed_from % EVERY == 0 and 0 < resumed_from <= killed_at < STEPS

    run([*args, *callbacks(workdir), "--ckpt_path", "last"])
    assert read_steps(workdir / "steps.jsonl") == ref_steps  # every step, before and after the kill, agrees
    assert_same_weights(weights(workdir / CHECKPOINTS / "last.ckpt"), ref_weights)


@pytest.mark.slow
def test_ddp_two_processes_with_muon_resume_exactly(workdir, corpus, zoo_cache):
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    steps = 8
    args = fit_args("mlm", corpus, *ddp, *MUON, steps=steps)
    mid_epoch = workdir / "reference" / "every_step" / "step=4.ckpt"
    runs = {}
    for name, extra in (("reference", []), ("resumed", ["--ckpt_path", str(mid_epoch)])):
        directory = workdir / name
        directory.mkdir()
        result = run_zoo([*args, *callbacks(directory, keep_every_step=name == "reference"),
                          "--checkpoint.dirpath", str(directory / "checkpoints"), *extra],
                         cwd=directory, zoo_cache=zoo_cache)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = {rank: read_steps(directory / f"steps{suffix}.jsonl") for rank, suffix in ((0, ""), (1, ".rank1"))}
    for rank in (0, 1):
        resumed, reference = runs["resumed"][rank], runs["reference"][rank]
        assert sorted(resumed) == list(range(5, steps + 1))
        assert {s: reference[s] for s in resumed} == resumed, f"rank {rank} differs after resuming"
    assert_same_weights(weights(workdir / "resumed/checkpoints/last.ckpt"),
                        weights(workdir / "reference/checkpoints/last.ckpt"))


@pytest.mark.slow
def test_fsdp_with_muon_trains_and_resumes(workdir, zoo_cache):
    configs = [str(REPO / "configs" / name) for name in ("gpt_clm.yaml", "debug/smoke.yaml", "scale/fsdp.yaml")]
    fit = ["fit", "--config", configs[0], "--config", configs[1], "--config", configs[2], *MUON,
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--checkpoint.dirpath", "checkpoints",
           "--trainer.enable_progress_bar", "false"]
    result = run_zoo(fit, cwd=workdir, zoo_cache=zoo_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    last = workdir / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    buffers = {tuple(s["momentum_buffer"].shape) for s in first["optimizer_states"][0]["state"].values()
               if "momentum_buffer" in s}
    assert buffers == {(32, 32), (128, 32), (32, 128)}  # whole matrices gathered, not shards
    result = run_zoo([*fit, "--trainer.max_steps", "6", "--ckpt_path", str(last)], cwd=workdir, zoo_cache=zoo_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 6
    assert {float(s["step"]) for s in resumed["optimizer_states"][0]["state"].values() if "step" in s} == {6.0}


def test_a_resume_that_changes_a_rate_applies_it_to_its_own_groups(workdir, corpus):
    """Muon's rate and AdamW's are separate settings: a resume changing one rewrites only its groups
    (and their scheduler entries); switching the optimizer itself is refused."""
    run(fit_args("clm", corpus, *MUON, steps=2))
    muon = ["--model.init_args.muon.lr", "0.05", "--model.init_args.muon.momentum", "0.9"]
    cli = run([*fit_args("clm", corpus, *MUON, steps=4), "--ckpt_path", "last", *muon])
    groups = {g["name"]: g for g in cli.trainer.optimizers[0].param_groups}
    assert groups["hidden"]["initial_lr"] == pytest.approx(0.05) and groups["hidden"]["momentum"] == 0.9
    assert groups["vector"]["initial_lr"] == pytest.approx(1e-3)  # gpt_clm's AdamW rate, unchanged
    cli = run([*fit_args("clm", corpus, *MUON, steps=6), "--ckpt_path", "last", *muon, "--model.init_args.lr", "1e-4"])
    groups = {g["name"]: g for g in cli.trainer.optimizers[0].param_groups}
    assert groups["hidden"]["initial_lr"] == pytest.approx(0.05) and groups["hidden"]["momentum"] == 0.9
    assert groups["vector"]["initial_lr"] == pytest.approx(1e-4)
    with pytest.raises(Exception, match="cannot resume with model.init_args.optimizer='adamw'"):
        run([*fit_args("clm", corpus, steps=8), "--ckpt_path", "last"])
