"""Checkpoint saves that cannot destroy a checkpoint (``zoo.callbacks.AtomicCheckpointIO``): written
beside the target whatever ``$TMPDIR`` is, a full disk leaving the previous file and nothing
half-written, and a kill at any moment of a save leaving a loadable file. The disk-full cases use
real tmpfs mounts (root only)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo.callbacks import AtomicCheckpointIO
from zoo.cli import main
from zoo.files import TEMP_MARK, FileWriteError, remove_stale_temporaries

from .conftest import fit_args, zoo_env


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of small tmpfs mounts, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_partial_file(tmpfs):
    disk = tmpfs("checkpoints", "1m")
    target = disk / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.zeros(1000)}, target)
    with pytest.raises(FileWriteError) as failed:
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(2_000_000)}, target)  # 8 MB on a 1 MB disk
    assert str(failed.value) == (f"cannot write the checkpoint {target}: no space left on the device "
                                 "(the previous file is intact)")
    assert torch.load(target, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in disk.iterdir()) == ["last.ckpt"]


def test_saves_go_beside_the_checkpoint_not_through_tmpdir(tmpfs, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmpfs("tiny_tmp", "64k")))  # Lightning's save needed room here
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    target = tmp_path / "ckpt" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(500_000)}, target)  # 2 MB
    assert torch.load(target, weights_only=True)["w"].numel() == 500_000


_SAVER = """
import sys, torch
from zoo.callbacks import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
print("ready", flush=True)
step = 0
while True:
    step += 1
    io.save_checkpoint({"global_step": step, "w": torch.full((4_000_000,), float(step))}, path)
"""


def test_a_kill_at_any_moment_of_a_save_leaves_a_loadable_checkpoint(tmpfs, tmp_path):
    # $TMPDIR on another filesystem than the checkpoint: the layout in which Lightning's move truncated it.
    env = {**zoo_env(tmp_path / "cache"), "TMPDIR": str(tmpfs("other_fs", "64m"))}
    target = tmp_path / "ckpt" / "last.ckpt"
    for trial in range(5):
        saver = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], env=env, stdout=subprocess.PIPE,
                                 text=True)
        assert saver.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.3, 1.5))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        if target.exists():  # the first trial may be killed before its first save completes
            checkpoint = torch.load(target, weights_only=True)
            assert bool((checkpoint["w"] == checkpoint["global_step"]).all()), f"trial {trial}: a torn file"
    assert target.exists()
    remove_stale_temporaries(target.parent)  # what a run does when it starts: a killed save's file goes
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_fit_on_a_full_checkpoint_disk_stops_in_one_line_and_keeps_what_was_saved(workdir, corpus, tmpfs,
                                                                                    monkeypatch):
    disk = tmpfs("full", "400k")  # room for a checkpoint or two of the smoke model, not for the whole run
    args = [*fit_args("clm", corpus, steps=30), "--checkpoint.dirpath", str(disk),
            "--last_checkpoint.every_n_train_steps", "1", "--model.init_args.config.num_layers", "2"]
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    message = exited.value.code
    assert isinstance(message, str) and message.startswith(f"zoo: error: cannot write the checkpoint {disk}/")
    assert "no space left on the device" in message and "\n" not in message
    for checkpoint in disk.glob("*.ckpt"):
        torch.load(checkpoint, weights_only=True)  # every file there is whole
    assert not list(disk.glob(f".*{TEMP_MARK}*"))
