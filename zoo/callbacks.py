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

import contextlib
import json
import math
import os
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from zoo.data.objectives import mix_seeds
from zoo.files import atomic_save, temporary_path


class NonFiniteLossError(ValueError):
    """A training loss or the weights turned NaN or infinite; the run stopped without saving them."""


# ---------------------------------------------------------------------------------------------
# Checkpoints


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` whose saves cannot destroy a checkpoint: each is written to a
    temporary file in the checkpoint's own directory, fsync'ed and renamed over the target
    (``zoo.files``). Lightning's own save moves a file from ``$TMPDIR``, which across filesystems (tmpfs
    ``/tmp``, checkpoints on a data disk or NFS) is a copy into the target opened with truncation: a
    kill mid-copy left ``last.ckpt`` empty. A save that fails (disk full, quota, read-only) leaves the
    previous file and nothing half-written, and raises a ``FileWriteError`` naming the path and why.
    Remote URLs (``s3://`` ...) go through Lightning's path unchanged. The CLI gives it to every Trainer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(path, lambda handle: torch.save(checkpoint, handle), what="checkpoint")


def use_atomic_checkpoints(trainer: L.Trainer) -> None:
    """Give ``trainer`` the ``AtomicCheckpointIO`` unless a plugin chose another ``CheckpointIO``."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


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
        # No version counter: a run directory holds one run, so last.ckpt is always this run's newest state.
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)
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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        use_atomic_checkpoints(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Saved before this validation (it holds what validation decided now), or another checkpoint
        # (the best) was just written: last.ckpt is never older than any checkpoint beside it.
        others = [c for c in trainer.checkpoint_callbacks if c is not self]
        if (self.saved is not None and self.saved[1] == trainer.global_step) or any(
                getattr(c, "_last_global_step_saved", -1) == trainer.global_step for c in others):
            self._save_last_now(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # A stop agreed at this step (GracefulStop, whose hook runs first: Lightning orders checkpoint
        # callbacks last) is saved here, where the periodic saves are: a loop state Lightning resumes
        # exactly. Saved later, from on_exception, a stop after an epoch's last batch held an epoch
        # already closed, and resumed into a one-batch epoch that skipped the next epoch's data.
        stopping = any(isinstance(c, GracefulStop) and c.stopping for c in trainer.callbacks)
        if stopping and self._last_global_step_saved != trainer.global_step:
            self._save_last_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_now(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Only a signal's stop comes between steps; any other exception may leave a step half done. A
        # stop cutting short this step's validation saves again, mid-validation: resumed, it finishes it.
        if not isinstance(exception, SIGTERMException):
            return
        if self._last_global_step_saved != trainer.global_step or trainer.validating:
            self._save_last_now(trainer)
        if self._last_global_step_saved == trainer.global_step:
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
    """SIGTERM or SIGINT (Ctrl+C) stop training after the current step, with ``last.ckpt`` saved at that
    step (``LastCheckpoint``), and the process exits with 128 + the signal (143 / 130) instead of 0 —
    on one process or under DDP, whichever ranks get the signal, however many times.

    The handler only notes the signal. At the end of every training step all ranks agree whether any
    of them got one (one scalar all-reduce; nothing under a single process), and if so every rank
    stops at that same step through Lightning's ``SIGTERMException``, so the checkpoint's collective
    save finds every rank there. Lightning's own SIGTERM handler is replaced: it broadcasts from inside
    the handler, which deadlocks when a signal reaches every rank at once (SLURM's ``scancel``,
    ``docker stop``, Kubernetes, ``timeout``, Ctrl+C in a terminal): a rank re-enters the broadcast
    while another waits in a barrier. Its SLURM auto-requeue handler (SIGUSR1) is kept.

    A second Ctrl+C more than a second after the first interrupts at once, without saving (a second
    SIGTERM changes nothing): signals forwarded to a process group often arrive twice.
    """

    #: Seconds after a first SIGINT during which another one is the same interrupt, not a second.
    REPEAT_WINDOW = 1.0

    def __init__(self) -> None:
        self.received: int | None = None
        self.stopping = False  # every rank agreed to stop after this step
        self._first_at = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        connector = trainer._signal_connector  # Lightning registers its handlers after setup, in _run
        lightning_register = connector.register_signal_handlers

        def register() -> None:
            lightning_register()
            self.received, self.stopping = None, False
            try:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    connector._original_handlers.setdefault(signum, signal.getsignal(signum))
                    signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals are not ours to take
                pass

        connector.register_signal_handlers = register

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received is not None:
            if signum == signal.SIGINT and now - self._first_at > self.REPEAT_WINDOW:
                raise KeyboardInterrupt
            return
        self.received, self._first_at = signum, now
        if signum == signal.SIGINT:
            rank_zero_info("Interrupted: stopping after the current step, with a checkpoint (Ctrl+C again: at once)")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # The highest signal number any rank got (0: none), so every rank also exits with the same status.
        received = torch.tensor(self.received or 0, device=pl_module.device)
        agreed = int(trainer.strategy.reduce(received, reduce_op="max")) if trainer.world_size > 1 else int(received)
        if agreed:
            # Every rank sets Lightning's flag at the same step; its loop raises SIGTERMException at the end
            # of this step, and LastCheckpoint saves it.
            self.received, self.stopping = agreed, True
            trainer._signal_connector.received_sigterm = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # a SystemExit: its code is the exit status
            exception.code = 128 + (self.received or signal.SIGTERM)


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
    the predict split), ``text`` (the sequence, decoded; a masked LM's with its masked tokens restored;
    a seq2seq one's ``target`` too), ``loss`` (mean cross-entropy over its scored tokens, nats),
    ``perplexity``, ``num_tokens`` and ``accuracy`` — or, for a task with ``prediction_records`` (the
    classifiers), the records it returns (predicted label name and every label's probability) with the
    ``text``. The file appears complete or not at all (written beside itself, then renamed). With
    several processes each writes ``<stem>.rank<N>.jsonl``.

    Args:
        output_path: The JSON Lines file; the CLI puts it in the run directory
            (``predict/<checkpoint>.jsonl``).
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self._file: TextIO | None = None
        self._next_index = 0

    def _path(self, trainer: L.Trainer) -> Path:
        path = Path(self.output_path or "predictions.jsonl")
        return path if trainer.world_size == 1 else path.with_name(f"{path.stem}.rank{trainer.global_rank}.jsonl")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self._path(trainer)
        if path.is_dir():
            raise ValueError(f"--prediction_writer.output_path {path} is a directory; give a file path (.jsonl)")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file, self._next_index = open(temporary_path(path), "w", encoding="utf-8"), 0  # noqa: SIM115

    def _texts(self, trainer: L.Trainer, batch: Any) -> tuple[list[str | None], list[str | None]]:
        """Each sequence's text (and target, for seq2seq) decoded with the data's tokenizer."""
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if tokenizer is None or ids is None:
            return [], []
        labels = batch.get("labels")
        if labels is not None and labels.shape == ids.shape and "decoder_input_ids" not in batch:
            ids = torch.where(labels >= 0, labels, ids)  # a masked LM's masked tokens, restored
        texts = [tokenizer.decode(row) for row in ids]
        targets = [tokenizer.decode(row[row >= 0]) for row in labels] if "decoder_input_ids" in batch else []
        return texts, targets

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        texts, targets = self._texts(trainer, batch)
        if hasattr(pl_module, "prediction_records"):  # a task that says what a line holds (classifiers)
            for i, record in enumerate(pl_module.prediction_records(prediction)):
                self._file.write(json.dumps({**record, **({"text": texts[i]} if i < len(texts) else {})}) + "\n")
            return
        n = len(prediction["loss"])
        indices = list(batch_indices) if batch_indices is not None else range(self._next_index, self._next_index + n)
        self._next_index += n
        columns = {k: v.tolist() for k, v in prediction.items()}
        for i, index in enumerate(indices):
            loss, tokens = columns["loss"][i], columns["num_tokens"][i]
            record = {"index": int(index), "text": texts[i] if i < len(texts) else None}
            if targets:
                record["target"] = targets[i]
            record |= {"loss": loss, "perplexity": math.exp(loss) if tokens else None,
                       "num_tokens": tokens, "accuracy": columns["num_correct"][i] / tokens if tokens else None}
            self._file.write(json.dumps(record) + "\n")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            path = self._path(trainer)
            os.replace(temporary_path(path), path)
            rank_zero_info(f"Predictions written to {path}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self._file is not None:  # nothing half-written stays behind
            self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                temporary_path(self._path(trainer)).unlink()


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
