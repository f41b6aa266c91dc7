"""A test callback that writes one JSON line per training step: the step, a digest of its batch and
its loss as an exact float (``float.hex``), flushed at once so a process killed with SIGKILL leaves
only whole lines. Runs through the CLI as ``reliability.recorder.StepRecorder`` (tests/ on the path)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def batch_digest(batch: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(batch):
        digest.update(key.encode())
        digest.update(batch[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class StepRecorder(Callback):
    """Append ``{"step", "epoch", "batch_idx", "rank", "batch", "loss"}`` to ``path`` after each
    training step (``.rank<N>`` is added to the name on ranks other than 0), then sleep ``delay``
    seconds, so that a test has time to signal a run in the middle."""

    def __init__(self, path: str = "steps.jsonl", delay: float = 0.0) -> None:
        self.path = path
        self.delay = delay

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        path = Path(self.path)
        if trainer.global_rank:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        record = {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch_idx": batch_idx,
                  "rank": trainer.global_rank, "batch": batch_digest(batch), "loss": float(outputs["loss"]).hex()}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        time.sleep(self.delay)


def read_steps(path: Path) -> dict[int, dict]:
    """Records by step; a step recorded twice (a resumed run repeating it) must have agreed."""
    steps: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        earlier = steps.setdefault(record["step"], record)
        assert earlier == record, f"step {record['step']} differs: {earlier} vs {record}"
    return steps


class SignalAt(Callback):
    """Send this process ``signum`` as training step ``step`` starts (a signal landing mid-step, at a
    step the test chooses). Runs in-process, through the CLI, as ``reliability.recorder.SignalAt``."""

    def __init__(self, step: int, signum: int = 15) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), self.signum)
