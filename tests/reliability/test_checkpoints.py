"""The checkpoint callbacks' refusals, and the pre-flight check of output directories."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from zoo.callbacks import BestCheckpoint, FiniteLossGuard, LastCheckpoint, NonFiniteLossError, check_writable
from zoo.cli import main, one_line, run

from .conftest import fit_args


def test_a_non_finite_validation_score_is_never_best():
    best = BestCheckpoint(monitor="val_loss", save_top_k=1)
    trainer = SimpleNamespace(global_step=3)
    for value in (float("nan"), float("inf")):
        assert not best.check_monitor_top_k(trainer, torch.tensor(value))
    assert best.check_monitor_top_k(trainer, torch.tensor(2.5))  # nothing kept yet: a finite score is best


def test_checkpoints_with_non_finite_weights_are_refused():
    last = LastCheckpoint()
    last.saved = ("runs/x/last.ckpt", 4)
    trainer = SimpleNamespace(global_step=6, callbacks=[last])
    guard = FiniteLossGuard()
    guard.on_save_checkpoint(trainer, None, {"state_dict": {"w": torch.ones(2), "steps": torch.tensor([1])}})
    with pytest.raises(NonFiniteLossError) as refused:
        guard.on_save_checkpoint(trainer, None, {"state_dict": {"w": torch.tensor([1.0, float("nan")])}})
    assert str(refused.value) == ("weights are not finite at step 6 (w); refused to write the checkpoint; "
                                  "last good checkpoint: runs/x/last.ckpt (step 4)")
    with pytest.raises(ValueError, match="every_n_train_steps"):
        LastCheckpoint(every_n_train_steps=-1)


def _read_only_directory(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits: take a file system that refuses it
        return Path("/sys/zoo-write-check")
    directory = tmp_path / "read_only"
    directory.mkdir(mode=0o555)
    return directory / "checkpoints"


UNWRITABLE = {
    "below_a_regular_file": lambda tmp_path: tmp_path / "a_file" / "checkpoints",
    "under_proc": lambda tmp_path: Path("/proc/zoo-write-check/checkpoints"),
    "read_only": _read_only_directory,
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_check_writable_names_the_path_and_leaves_nothing_behind(tmp_path, case):
    (tmp_path / "a_file").write_text("not a directory")
    path = UNWRITABLE[case](tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError) as refused:
        check_writable(path, "checkpoint directory")
    message = str(refused.value)
    assert message.startswith(f"cannot write the checkpoint directory {path}:") and "\n" not in message
    check_writable(tmp_path / "new" / "nested", "checkpoint directory")  # creatable: passes
    assert sorted(tmp_path.rglob("*")) == before, "the check removes what it made"


def test_fit_stops_before_training_when_checkpoints_cannot_be_written(workdir, corpus):
    (workdir / "a_file").write_text("not a directory")
    with pytest.raises(ValueError) as refused:
        run([*fit_args("clm", corpus), "--checkpoint.dirpath", "a_file/checkpoints"])
    message = one_line(refused.value)
    assert message.startswith(f"cannot write the checkpoint directory (--checkpoint.dirpath) {workdir}/a_file/")
    assert sorted(p.name for p in workdir.iterdir()) == ["a_file"], "nothing written, nothing trained"


def test_console_script_names_an_unwritable_log_directory_in_one_line(workdir, corpus, monkeypatch, capsys):
    (workdir / "a_file").write_text("not a directory")
    logger = {"trainer": {"logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                     "init_args": {"save_dir": "a_file/logs"}}}}
    (workdir / "logger.yaml").write_text(json.dumps(logger))
    monkeypatch.setattr(sys, "argv", ["zoo", *fit_args("clm", corpus), "--config", "logger.yaml"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == (f"zoo: error: cannot write the log directory of CSVLogger (--trainer.logger) "
                                 f"{workdir}/a_file/logs: {workdir}/a_file is a file, not a directory")
    assert not (workdir / "runs").exists()
