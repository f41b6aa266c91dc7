"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


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
