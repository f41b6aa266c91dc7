"""One error policy (``zoo.cli.main``/``expected_error``): what a user can act on ends in one
``zoo: error:`` line naming the file, field or value; a bug keeps its traceback. Devices are checked
before anything is built."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import check_devices, expected_error, main
from zoo.files import FileWriteError

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--config", str(REPO / "configs" / "gpt_clm.yaml"), "--config", str(REPO / "configs" / "debug" / "smoke.yaml")]


def _zoo(monkeypatch, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code


class DatasetGenerationError(Exception):
    """Named as ``datasets``' own: the policy goes by the name, so ``datasets`` need not be imported."""


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.ENOSPC, "No space left on device", "/data/shards/train.bin"),
     "/data/shards/train.bin: no space left on the device"),
    (PermissionError(errno.EACCES, "Permission denied", "/cache/zoo"), "/cache/zoo: permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "/ro/x: read-only file system"),
    (FileWriteError(errno.ENOSPC, "cannot write the checkpoint /c/last.ckpt: no space left on the device"),
     "cannot write the checkpoint /c/last.ckpt: no space left on the device"),
    (_caused(DatasetGenerationError("An error occurred while generating the dataset"),
             ValueError("train.csv, row 7: expected 2 fields, saw 3")),
     "reading the data failed: train.csv, row 7: expected 2 fields, saw 3"),
    (RuntimeError("Found no NVIDIA driver on your system."), "device: Found no NVIDIA driver on your system."),
    (RuntimeError("Expected one of cpu, cuda, xpu device type at start of device string: gpux"),
     "device: Expected one of cpu, cuda, xpu device type at start of device string: gpux"),
])
def test_expected_failures_become_one_line(error, line):
    assert expected_error(error) == line


def test_out_of_memory_says_what_to_lower():
    line = expected_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"))
    assert line.startswith("out of device memory: CUDA out of memory. Tried to allocate 2.00 GiB; lower")


@pytest.mark.parametrize("bug", [RuntimeError("index out of range in self"), KeyError("x"), AttributeError("y")])
def test_a_bug_keeps_its_traceback(bug):
    assert expected_error(bug) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_an_accelerator_the_machine_lacks_is_one_line_before_anything_is_built(monkeypatch, tmp_path, accelerator):
    monkeypatch.chdir(tmp_path)
    message = _zoo(monkeypatch, "fit", *SMOKE, "--trainer.accelerator", accelerator)
    assert message == (f"zoo: error: --trainer.accelerator {accelerator}: no CUDA GPU is visible to this process "
                       "(torch.cuda.is_available() is False); use --trainer.accelerator cpu (or auto)")
    assert not (tmp_path / "runs").exists()


def test_more_cpu_processes_than_cores_warn_with_the_global_batch(capsys, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    check_devices({"trainer": {"accelerator": "cpu", "devices": 4}, "data": {"init_args": {"batch_size": 32}}})
    assert capsys.readouterr().err.strip() == (
        "zoo: warning: --trainer.devices 4 starts 4 training processes on 2 CPU cores: each gets less than a "
        "core, and the global batch per step is 4 x 32 = 128 sequences")
    check_devices({"trainer": {"accelerator": "cpu", "devices": 2}, "data": {"init_args": {"batch_size": 32}}})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("device", "fault"), [
    ("cuda", "--device cuda: no CUDA GPU is visible to this process; use --device cpu"),
    ("tpu9", "--device 'tpu9' is not a device; use cpu, cuda or cuda:N"),
])
def test_generate_checks_the_device_first(monkeypatch, tmp_path, device, fault):
    if torch.cuda.is_available() and device == "cuda":
        pytest.skip("checks a machine without a GPU")
    message = _zoo(monkeypatch, "generate", str(tmp_path / "missing.ckpt"), "--prompt", "x", "--device", device)
    assert message == f"zoo: error: {fault}"
