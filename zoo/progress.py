"""Progress a person can read: the whole run's steps, not one epoch's batches.

``StepProgressBar`` (a terminal): one tqdm bar over the run's optimizer steps, ``step/total`` with
the elapsed time and an ETA, the epoch in its description and the logged figures beside it.
``StepProgressLines`` (output to a file or pipe, e.g. a cluster job's log): a plain line every
``log_every_n_steps`` steps and after each validation::

    step 200/600 (33 %)  epoch 1  train_loss 5.812  val_loss 5.901  tok/s 41,200  elapsed 0:01:05  eta 0:02:10

The CLI picks one by whether standard output is a terminal (``progress_bar`` below).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


def total_steps(trainer: L.Trainer) -> int | None:
    """The run's optimizer steps: ``max_steps``, else the Trainer's estimate from the epochs (None when
    it cannot know, e.g. an endless iterable)."""
    if trainer.max_steps and trainer.max_steps > 0:
        return trainer.max_steps
    estimate = trainer.estimated_stepping_batches
    return int(estimate) if math.isfinite(estimate) else None


def _clock(seconds: float) -> str:
    return str(dt.timedelta(seconds=int(max(seconds, 0))))


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting the run's optimizer steps (with an ETA) instead of restarting at
    every epoch; validation keeps its own bar. Arguments as in ``TQDMProgressBar``."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.train_progress_bar.total = total_steps(trainer)
        self.train_progress_bar.initial = trainer.global_step  # a resumed run starts where it stopped
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.unit = "step"

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def init_train_tqdm(self) -> Tqdm:
        bar = super().init_train_tqdm()
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining}]{postfix}"
        return bar


class StepProgressLines(ProgressBar):
    """Plain progress lines for logs that are not a terminal (see the module docstring).

    Args:
        every_n_steps: Steps between lines; None takes the Trainer's ``log_every_n_steps``.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._start = 0.0
        self._start_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._start_step = time.monotonic(), trainer.global_step
        total = total_steps(trainer)
        begin = "resuming at" if trainer.global_step else "training"
        self._print(f"{begin} step {trainer.global_step} of {total if total else 'an unknown number'}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self.every_n_steps or trainer.log_every_n_steps or 50
        if trainer.global_step % every == 0:
            self._print(self.line(trainer, pl_module))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._print(self.line(trainer, pl_module, prefix="val_"))

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule, prefix: str = "") -> str:
        """``step N/M (p %)  epoch E  <metrics>  elapsed  eta`` (only the metrics named ``prefix...``)."""
        step, total = trainer.global_step, total_steps(trainer)
        parts = [f"step {step}/{total} ({100 * step / total:.0f} %)" if total else f"step {step}",
                 f"epoch {trainer.current_epoch}"]
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key == "v_num" or not key.startswith(prefix):
                continue
            parts.append(f"{key} {value}" if isinstance(value, str) else f"{key} {value:.4g}")
        elapsed = time.monotonic() - self._start
        parts.append(f"elapsed {_clock(elapsed)}")
        done = step - self._start_step
        if total and done > 0:
            parts.append(f"eta {_clock(elapsed / done * (total - step))}")
        return "  ".join(parts)

    def _print(self, text: str) -> None:
        if self._enabled:
            print(text, flush=True)


def progress_bar() -> ProgressBar:
    """A step bar on a terminal, plain lines otherwise."""
    return StepProgressBar() if sys.stdout.isatty() else StepProgressLines()
