"""Callbacks the CLI adds to every run: checkpoints that follow the run, exact resumption, signals,
non-finite losses, pre-flight checks, and the prediction writer.

Never lose a run — who does what:

- `LastCheckpoint` (``--last_checkpoint``) writes ``last.ckpt`` every N training steps, at the end of
  training and when SIGTERM/SIGINT stop the run; `BestCheckpoint` (``--checkpoint``) keeps the best
  by validation beside it, and never counts a non-finite score as best.
- `StepSeeds` seeds torch before every training batch from (seed, rank, epoch, batch), so dropout in
  a resumed run draws what it drew in the uninterrupted one; the data loader's position and the
  collators' masks resume through `TextDataModule`'s `StatefulDataLoader` (see `SeededSampler`).
- `GracefulStop` makes SIGINT stop like SIGTERM (after the current step, checkpoint saved) and sets
  the exit status to 130 / 143.
- `FiniteLossGuard` stops at the first non-finite training loss, before its update, with one line
  naming the step, the value and the last good checkpoint; no non-finite weights are ever saved.
- `check_writable` runs before anything trains (``zoo fit`` calls it on every output directory).
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from zoo.data.objectives import mix_seeds


class NonFiniteLossError(ValueError):
    """A training loss or the weights turned NaN or infinite; the run stopped without saving them."""


# ---------------------------------------------------------------------------------------------
# Checkpoints


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` keeping the best checkpoints by a validation metric (``--checkpoint``),
    where a NaN or infinite value is never among the best (Lightning's would keep a NaN as best when
    nothing was saved yet). Arguments as in ``ModelCheckpoint``."""

    def check_monitor_top_k(self, trainer: L.Trainer, current: Tensor | None = None) -> bool:
        if current is not None and not bool(torch.isfinite(current).all()):
            rank_zero_warn(f"{self.monitor} is {float(current)} at step {trainer.global_step}: not a best checkpoint")
            return False
        return super().check_monitor_top_k(trainer, current)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``, always the newest state of the run, whatever validation does: written every
    ``every_n_train_steps`` optimizer steps, again after a validation that follows such a step (so
    it holds what that validation decided), at the end of training, and when SIGTERM or SIGINT stop
    the run (Lightning's ``SIGTERMException``, raised between steps). It resumes exactly with
    ``zoo fit --ckpt_path last``.

    Args:
        dirpath: Where ``last.ckpt`` goes; the CLI links it to ``--checkpoint.dirpath``.
        every_n_train_steps: Steps between saves (0: only at the end and on a signal). Each save
            writes the weights and the optimizer state: with a large model on a fast accelerator,
            raise it.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 100) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps)
        self.saved: tuple[str, int] | None = None  # (path, global step) of the newest checkpoint written

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self.saved = (filepath, trainer.global_step)

    def _save_last_now(self, trainer: L.Trainer) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.saved is None and trainer.ckpt_path:  # until this run saves, the good one is where it resumed
            self.saved = (str(trainer.ckpt_path), trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.saved is not None and self.saved[1] == trainer.global_step:  # saved before this validation
            self._save_last_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_now(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Only a signal's stop comes between steps; any other exception may leave a step half done.
        if isinstance(exception, SIGTERMException) and self._last_global_step_saved != trainer.global_step:
            self._save_last_now(trainer)
            rank_zero_info(f"Stopped by a signal at step {trainer.global_step}; saved {self.last_model_path}")


# ---------------------------------------------------------------------------------------------
# Exact resumption, signals, non-finite losses


class StepSeeds(Callback):
    """Seed torch's random number generators before every training batch from (seed, rank, epoch,
    batch index): dropout, and anything else random in a step, then depends only on where the step
    is in the run, so a resumed run draws exactly what the uninterrupted one did, with no generator
    state to carry in checkpoints.

    Args:
        seed: The base seed; None takes the run's ``seed_everything`` (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        torch.manual_seed(mix_seeds(base, trainer.global_rank, trainer.current_epoch, batch_idx))


class GracefulStop(Callback):
    """SIGINT (Ctrl+C) stops training the way SIGTERM does in Lightning: the current step finishes,
    ``LastCheckpoint`` saves it, and the process exits with 128 + the signal (130 for SIGINT, 143 for
    SIGTERM) instead of 0. A second Ctrl+C interrupts at once, as usual.

    Lightning's own SIGTERM handler (installed for ``fit``, and forwarding the signal to DDP
    workers) marks the trainer; its loop then raises ``SIGTERMException`` between steps.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals are not ours to take
            self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum
        if signum == signal.SIGINT:
            rank_zero_info("Interrupted: stopping after the current step, with a checkpoint (Ctrl+C again: at once)")
        lightning_handler = self._previous.get(signal.SIGTERM)
        if callable(lightning_handler):
            lightning_handler(signal.SIGTERM, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException):  # a SystemExit: its code is the exit status
            exception.code = 128 + (self.received or signal.SIGTERM)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()


class FiniteLossGuard(Callback):
    """Stop at the first NaN or infinite training loss, before its backward pass and update, with a
    ``NonFiniteLossError`` naming the step, the value and the last good checkpoint; and refuse to write
    any checkpoint holding non-finite weights, so ``last.ckpt`` and the best checkpoint stay good. Under
    DDP all ranks agree on stopping (one scalar all-reduce per step)."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        value = f"{float(loss.detach().float().mean())}" if not finite else "finite here but not on another rank"
        raise NonFiniteLossError(
            f"training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); stopped "
            f"before updating the weights, nothing saved; {self._last_good(trainer)}"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        bad = next((name for name, value in checkpoint.get("state_dict", {}).items()
                    if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())),
                   None)
        if bad is not None:
            raise NonFiniteLossError(
                f"weights are not finite at step {trainer.global_step} ({bad}); refused to write the checkpoint; "
                f"{self._last_good(trainer)}"
            )

    @staticmethod
    def _last_good(trainer: L.Trainer) -> str:
        saved = [c.saved for c in trainer.callbacks if isinstance(c, LastCheckpoint) and c.saved is not None]
        if not saved:
            return "no checkpoint was written yet"
        path, step = max(saved, key=lambda s: s[1])
        return f"last good checkpoint: {path} (step {step})"


# ---------------------------------------------------------------------------------------------
# Predictions


class PredictionWriter(BasePredictionWriter):
    """Write what ``zoo predict`` scores as JSON lines, one per sequence: ``index`` (its position in
    the predict split), ``loss`` (mean cross-entropy over its scored tokens, nats), ``perplexity``,
    ``num_tokens`` and ``accuracy`` — or, for a task with ``prediction_records`` (the classifiers),
    the records it returns (predicted label and every label's probability). With several processes
    each writes ``<stem>.rank<N>.jsonl``.

    Args:
        output_path: The JSON Lines file; replaced by each ``predict`` run, untouched by the others.
    """

    def __init__(self, output_path: str = "runs/predictions.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self._file: TextIO | None = None
        self._next_index = 0

    def _path(self, trainer: L.Trainer) -> Path:
        path = Path(self.output_path)
        return path if trainer.world_size == 1 else path.with_name(f"{path.stem}.rank{trainer.global_rank}.jsonl")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self._path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file, self._next_index = open(path, "w", encoding="utf-8"), 0

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if hasattr(pl_module, "prediction_records"):  # a task that says what a line holds (classifiers)
            for record in pl_module.prediction_records(prediction):
                self._file.write(json.dumps(record) + "\n")
            return
        n = len(prediction["loss"])
        indices = list(batch_indices) if batch_indices is not None else range(self._next_index, self._next_index + n)
        self._next_index += n
        columns = {k: v.tolist() for k, v in prediction.items()}
        for i, index in enumerate(indices):
            loss, tokens = columns["loss"][i], columns["num_tokens"][i]
            record = {"index": int(index), "loss": loss, "perplexity": math.exp(loss) if tokens else None,
                      "num_tokens": tokens, "accuracy": columns["num_correct"][i] / tokens if tokens else None}
            self._file.write(json.dumps(record) + "\n")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            rank_zero_info(f"Predictions written to {self._path(trainer)}")


# ---------------------------------------------------------------------------------------------
# Pre-flight


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Check that directory ``path`` exists or can be created, and takes new files — by doing both,
    then removing what the check made (so a run that fails later leaves nothing behind).

    Raises:
        ValueError: One line naming ``what`` and the path, and why (below a regular file, a read-only
            or virtual file system, no permission).
    """
    target = Path(path).expanduser().absolute()
    existing = next(d for d in (target, *target.parents) if d.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot write the {what} {target}: {existing} is a file, not a directory")
    created: list[Path] = []
    try:
        for directory in [existing / part for part in _prefixes(target.relative_to(existing))]:
            try:
                directory.mkdir()
            except OSError as error:
                raise ValueError(f"cannot write the {what} {target}: cannot create {directory} "
                                 f"({error.strerror or type(error).__name__})") from None
            created.append(directory)
        try:
            with tempfile.NamedTemporaryFile(dir=target, prefix=".zoo-write-check-"):
                pass
        except OSError as error:
            raise ValueError(f"cannot write the {what} {target}: cannot create files in it "
                             f"({error.strerror or type(error).__name__})") from None
    finally:
        for directory in reversed(created):
            try:
                directory.rmdir()
            except OSError:
                pass


def _prefixes(relative: Path) -> list[Path]:
    """``a/b/c`` -> ``[a, a/b, a/b/c]``."""
    parts = relative.parts
    return [Path(*parts[: i + 1]) for i in range(len(parts))]
