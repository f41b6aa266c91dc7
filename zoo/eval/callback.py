"""``DownstreamEval``: task scores during ``zoo fit``, logged beside the loss.

    zoo fit --config configs/gpt_clm.yaml \\
        --trainer.callbacks+=zoo.eval.callback.DownstreamEval \\
        --trainer.callbacks.tasks='[zoo_cloze, zoo_next_sentence]' --trainer.callbacks.every_n_steps 100

Every ``every_n_steps`` optimizer steps (and once at the end of training), the model in training is
scored on the chosen local tasks through ``zoo.eval.harness.ZooLM`` and each metric goes to every
logger as ``downstream/<task>/<metric>`` at that step (CSV, TensorBoard: a curve of task accuracy
over training). Tasks are loaded once, at setup, where a task the family cannot answer is refused
in one line before the first step. The evaluation leaves training as it found it: the model back in
train mode, and Python's, NumPy's and torch's random states restored (a run with the callback
trains exactly as one without). It runs on the global-zero process while the others wait; a model
sharded by FSDP cannot be scored that way and is refused.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info


class DownstreamEval(Callback):
    """Score the model on lm-eval tasks every ``every_n_steps`` steps and log the scores.

    Args:
        tasks: Task or tag names (the zoo's local tasks: zoo_cloze, zoo_next_sentence, zoo_last_word,
            zoo_paragraphs, zoo_copy, ...; lm-eval's own when their data is on disk).
        every_n_steps: Optimizer steps between evaluations, >= 1.
        limit: Items per task at most (null: all of them); evaluations cost time in the loop.
        num_fewshot: Examples before each question (null: each task's default, else 0).
        batch_size: Sequences per forward (masked LM: masked copies).
        at_end: Also evaluate once when training ends (unless that step was just evaluated).
    """

    def __init__(
        self,
        tasks: list[str] | None = None,
        every_n_steps: int = 100,
        limit: int | None = 100,
        num_fewshot: int | None = None,
        batch_size: int = 32,
        at_end: bool = True,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"DownstreamEval: every_n_steps={every_n_steps} must be >= 1")
        if limit is not None and limit < 1:
            raise ValueError(f"DownstreamEval: limit={limit} must be >= 1 (or null for every item)")
        if batch_size < 1:
            raise ValueError(f"DownstreamEval: batch_size={batch_size} must be >= 1")
        self.tasks = list(tasks) if tasks else ["zoo_cloze", "zoo_next_sentence"]
        self.every_n_steps, self.limit, self.num_fewshot = every_n_steps, limit, num_fewshot
        self.batch_size, self.at_end = batch_size, at_end
        self._prepared: Any = None
        self._last_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from zoo.eval.run import check_tasks, prepare
        from zoo.models.registry import family_of

        if "fsdp" in type(trainer.strategy).__name__.lower():
            raise ValueError("DownstreamEval: the model is sharded by FSDP, and one process cannot score it; "
                             "evaluate the checkpoints with `zoo eval` instead")
        self._tokenizer(trainer)  # fails now, not after the first N steps
        self._prepared = prepare(self.tasks)
        model = pl_module.model
        check_tasks(self._prepared[1], family_of(model).shape, type(model).__name__, self.num_fewshot)

    def _tokenizer(self, trainer: L.Trainer) -> Any:
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("DownstreamEval needs the data module's tokenizer (zoo.data.TextDataModule and the "
                             f"fine-tuning data modules have one; {type(trainer.datamodule).__name__} has none)")
        return tokenizer

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end and trainer.global_step != self._last_step:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Score the model now and log ``downstream/<task>/<metric>``; returns what was logged
        (empty on other ranks)."""
        self._last_step = trainer.global_step
        metrics: dict[str, float] = {}
        if trainer.is_global_zero:
            metrics = self._score(trainer, pl_module)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
            shown = ", ".join(f"{k.removeprefix('downstream/')}={v:.4f}" for k, v in metrics.items())
            rank_zero_info(f"DownstreamEval at step {trainer.global_step}: {shown}")
        trainer.strategy.barrier("DownstreamEval")
        return metrics

    def _score(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        from zoo.eval.harness import ZooLM
        from zoo.eval.run import evaluate, scores

        model = pl_module.model
        was_training = model.training
        python_state, numpy_state = random.getstate(), np.random.get_state()
        devices = [model.embed_tokens.weight.device] if model.embed_tokens.weight.is_cuda else []
        try:
            with torch.random.fork_rng(devices=devices):
                lm = ZooLM.from_model(model, self._tokenizer(trainer), batch_size=self.batch_size, progress=False)
                results = evaluate(lm, self.tasks, num_fewshot=self.num_fewshot, limit=self.limit, quiet=True,
                                   bootstrap_iters=0, prepared=self._prepared, reseed=False)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            model.train(was_training)
        return {f"downstream/{row['task']}/{row['metric']}": row["value"] for row in scores(results)
                if row["filter"] in ("none", "strip")}
