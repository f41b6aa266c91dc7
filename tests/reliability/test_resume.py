"""A resumed run is the uninterrupted run, bit for bit: same batch and loss at every step after the
resume point, same final weights — for every objective, across epoch ends, with an epoch budget
(Lightning issue #20550), and under 2-process DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo.callbacks import BestCheckpoint
from zoo.cli import run

from .conftest import STEPS, assert_same_weights, callbacks, fit_args, run_zoo, weights
from .recorder import read_steps


def _fit(directory: Path, args: list[str], **overlay) -> tuple[object, dict[int, dict]]:
    directory.mkdir(parents=True, exist_ok=True)
    cli = run([*args, *callbacks(directory, **overlay), "--checkpoint.dirpath", str(directory / "checkpoints")])
    return cli, read_steps(directory / "steps.jsonl")


@pytest.mark.parametrize("objective", ["clm", "mlm", "span"])
def test_resume_after_an_epoch_end_is_exact_and_last_is_the_final_step(workdir, corpus, objective):
    args = fit_args(objective, corpus)
    reference, ref_steps = _fit(workdir / "reference", args, keep_every_step=True)
    per_epoch = reference.trainer.num_training_batches
    assert sorted(ref_steps) == list(range(1, STEPS + 1))
    assert {r["epoch"] for r in ref_steps.values()} == {0, 1, 2}, "the run must cross epoch ends"

    # last.ckpt holds the final step (14 is no multiple of --last_checkpoint.every_n_train_steps 3, and
    # no validation ran there), the best checkpoint by validation is kept beside it.
    checkpoints = workdir / "reference" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["global_step"] == STEPS
    assert_same_weights(last["state_dict"], reference.trainer.lightning_module.state_dict())
    best = Path(next(c for c in reference.trainer.callbacks if isinstance(c, BestCheckpoint)).best_model_path)
    assert best.parent == checkpoints and torch.load(best, weights_only=True)["global_step"] < STEPS

    # Resume from the checkpoint taken after the first epoch's last batch (a short one for clm and span).
    after_epoch = workdir / "reference" / "every_step" / f"step={per_epoch}.ckpt"
    _, steps = _fit(workdir / "resumed", [*args, "--ckpt_path", str(after_epoch)])
    assert sorted(steps) == list(range(per_epoch + 1, STEPS + 1))
    assert {s: ref_steps[s] for s in steps} == steps, "a step after the resume saw another batch or loss"
    assert_same_weights(weights(workdir / "resumed" / "checkpoints" / "last.ckpt"), last["state_dict"])


def test_resume_with_an_epoch_budget_keeps_the_loader_position(workdir, corpus):
    """With max_epochs, the cosine schedule's length comes from trainer.estimated_stepping_batches;
    reading it in configure_optimizers made Lightning drop the restored loader position (#20550)."""
    args = fit_args("clm", corpus, "--trainer.max_steps", "-1", "--trainer.max_epochs", "2",
                    "--model.init_args.max_steps", "null")
    _, ref_steps = _fit(workdir / "reference", args, keep_every_step=True)
    assert max(ref_steps) == 12  # 2 epochs of 6 batches
    mid_epoch = workdir / "reference" / "every_step" / "step=3.ckpt"
    _, steps = _fit(workdir / "resumed", [*args, "--ckpt_path", str(mid_epoch)])
    assert sorted(steps) == list(range(4, 13)) and {s: ref_steps[s] for s in steps} == steps
    assert_same_weights(weights(workdir / "resumed" / "checkpoints" / "last.ckpt"),
                        weights(workdir / "reference" / "checkpoints" / "last.ckpt"))


@pytest.mark.slow
def test_ddp_two_processes_resume_exactly(workdir, corpus, zoo_cache):
    """`strategy=ddp` inside pytest would re-run pytest in the child, so the CLI runs as a subprocess."""
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    steps = 8  # 22 blocks over 2 ranks: 3 batches per epoch and rank, the last one short
    args = fit_args("mlm", corpus, *ddp, steps=steps)
    runs = {}
    mid_epoch = workdir / "reference" / "every_step" / "step=4.ckpt"
    for name, extra in (("reference", []), ("resumed", ["--ckpt_path", str(mid_epoch)])):
        directory = workdir / name
        directory.mkdir()
        result = run_zoo([*args, *callbacks(directory, keep_every_step=name == "reference"),
                          "--checkpoint.dirpath", str(directory / "checkpoints"), *extra],
                         cwd=directory, zoo_cache=zoo_cache)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = {rank: read_steps(directory / f"steps{suffix}.jsonl") for rank, suffix in ((0, ""), (1, ".rank1"))}
    reference, resumed = runs["reference"], runs["resumed"]
    assert reference[0][1]["batch"] != reference[1][1]["batch"], "each rank reads its own share"
    assert {r["epoch"] for r in reference[0].values()} == {0, 1, 2}
    for rank in (0, 1):
        assert sorted(resumed[rank]) == list(range(5, steps + 1))
        assert {s: reference[rank][s] for s in resumed[rank]} == resumed[rank], f"rank {rank} differs after resuming"
    assert_same_weights(weights(workdir / "resumed/checkpoints/last.ckpt"),
                        weights(workdir / "reference/checkpoints/last.ckpt"))
