"""Train a zoo task for an experiment and keep its curves: training loss, gradient norm and step time
every step, validation loss at intervals.

``train(task, data, max_steps=...)`` is a Lightning ``Trainer`` run without checkpoints, loggers or
progress bars (the curves come back as a ``History``), on a GPU when there is one. A run whose loss
turns NaN or infinite stops there and reports itself ``diverged``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch

from zoo.quiet import quiet_lightning


@dataclass
class History:
    """The curves of one training run.

    Attributes:
        steps: Optimizer step (1-based) of each ``train_loss`` / ``grad_norm`` / ``step_time`` entry.
        train_loss: Training loss of that step's batch.
        grad_norm: Global L2 norm of the gradients before that step (before any clipping).
        step_time: Seconds of that step (forward, backward, optimizer).
        val_steps: Steps after which validation ran.
        val_loss: Validation loss at each of ``val_steps``.
        val_metrics: Every ``val_*`` metric the task logged, at each of ``val_steps`` (e.g. ``val_accuracy``).
        wall_time: Seconds of the whole run, validation included.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    step_time: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metrics: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def diverged(self) -> bool:
        """A loss became NaN or infinite."""
        return any(not math.isfinite(v) for v in self.train_loss + self.val_loss)

    @property
    def final_val_loss(self) -> float:
        """The last validation loss (NaN when the run never validated)."""
        return self.val_loss[-1] if self.val_loss else math.nan

    @property
    def median_step_time(self) -> float:
        """Median seconds per step, the first few steps left out (they pay for warm-up)."""
        times = self.step_time[min(5, len(self.step_time) // 4):]
        return statistics.median(times) if times else math.nan

    def smoothed_train_loss(self, window: int = 20) -> list[float]:
        """Trailing mean of the training loss over ``window`` steps, one value per step."""
        out, total = [], 0.0
        for i, value in enumerate(self.train_loss):
            total += value
            if i >= window:
                total -= self.train_loss[i - window]
            out.append(total / min(i + 1, window))
        return out


class HistoryCallback(L.Callback):
    """Fills a ``History`` while a ``Trainer`` runs; stops training when the loss is not finite."""

    def __init__(self, history: History | None = None, stop_on_divergence: bool = True) -> None:
        self.history = history if history is not None else History()
        self.stop_on_divergence = stop_on_divergence
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        grads = [p.grad.detach().float().norm() for p in pl_module.parameters() if p.grad is not None]
        self.history.grad_norm.append(float(torch.stack(grads).norm()) if grads else 0.0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.history.step_time.append(time.perf_counter() - self._start)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = float(loss)
        self.history.steps.append(trainer.global_step)
        self.history.train_loss.append(value)
        if self.stop_on_divergence and not math.isfinite(value):
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        self.history.val_steps.append(trainer.global_step)
        self.history.val_loss.append(metrics["val_loss"])
        self.history.val_metrics.append(metrics)


def train(
    task: L.LightningModule,
    data: L.LightningDataModule,
    *,
    max_steps: int,
    val_every: int | None = None,
    val_batches: int | float = 8,
    accelerator: str = "auto",
    gradient_clip_val: float | None = None,
    precision: str | None = None,
    save_checkpoint: str | None = None,
) -> History:
    """Train ``task`` on ``data`` for ``max_steps`` optimizer steps and return its curves.

    Args:
        task: A zoo LightningModule (``CausalLM``, ``MaskedLM``, ``Seq2SeqLM``, ...), freshly built.
        data: Its data module.
        max_steps: Optimizer steps.
        val_every: Validate every this many steps; None = once, at the end. Validation also runs
            after the last step when ``max_steps`` is not a multiple of it.
        val_batches: Validation batches per validation (an int), or a fraction of them.
        accelerator: Lightning's accelerator; ``auto`` takes a GPU when there is one.
        gradient_clip_val: Clip the global gradient norm to this (None = no clipping; the recorded
            ``grad_norm`` is measured before clipping).
        precision: Lightning's precision (e.g. ``bf16-mixed``); None = its default, fp32.
        save_checkpoint: Write a checkpoint of the trained task here (what ``pretrained=`` of a
            fine-tuning task and ``zoo.tasks.load_task`` read).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be >= 1")
    val_every = min(val_every or max_steps, max_steps)
    callback = HistoryCallback()
    with quiet_lightning():
        trainer = L.Trainer(
            max_steps=max_steps, val_check_interval=val_every, check_val_every_n_epoch=None,
            limit_val_batches=val_batches, num_sanity_val_steps=0, accelerator=accelerator, devices=1,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            gradient_clip_val=gradient_clip_val, precision=precision, callbacks=[callback],
        )
        start = time.perf_counter()
        task.train()  # a model measured in eval mode beforehand trains as usual (Lightning warns otherwise)
        trainer.fit(task, datamodule=data)
        history = callback.history
        if not history.diverged and (not history.val_steps or history.val_steps[-1] != trainer.global_step):
            trainer.validate(task, datamodule=data, verbose=False)
        history.wall_time = time.perf_counter() - start
        if save_checkpoint is not None:
            trainer.save_checkpoint(save_checkpoint)
    return history
