"""One point of a learning-rate transfer sweep: a family config widened to a given width, under a
given parametrisation and optimizer, trained at a given rate for a given number of steps on a zoo
data module — ``train_at_width`` returns its curves, ``final_val_loss`` the number a sweep plots.

A sweep is these points over widths × rates × seeds, for each parametrisation (and optimizer):
under the standard parametrisation the best rate moves with the width, under μP it should stay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import lightning as L

from zoo.analysis.training import History, train
from zoo.models.config import Parametrization, TransformerConfig


def widen(config: TransformerConfig, width: int, *, parametrization: Parametrization | None = None,
          base_width: int | None = None) -> TransformerConfig:
    """``config`` with ``embed_dim = width`` (and the parametrisation and base width, when given);
    everything else kept: ``num_heads`` and ``num_layers`` fixed, ``head_dim`` and ``ffn_dim`` grow
    with the width when they are null (as μP's ``base_width`` assumes) and stay when set."""
    values: dict[str, Any] = {"embed_dim": width}
    if parametrization is not None:
        values["parametrization"] = parametrization
    if base_width is not None:
        values["base_width"] = base_width
    return dataclasses.replace(config, **values)


def train_at_width(
    task_class: type,
    config: TransformerConfig,
    data: L.LightningDataModule,
    *,
    width: int,
    lr: float,
    steps: int,
    parametrization: Parametrization = "standard",
    base_width: int | None = None,
    optimizer: str = "adamw",
    muon: Mapping[str, Any] | None = None,
    seed: int = 0,
    warmup_steps: int = 0,
    val_batches: int | float = 8,
    gradient_clip_val: float | None = 1.0,
    precision: str | None = None,
    **task_kwargs: Any,
) -> History:
    """Train ``task_class`` (``CausalLM``, ``MaskedLM``, ``Seq2SeqLM``, ...) on ``data`` at one point
    of a sweep and return its curves (``zoo.analysis.training.train``).

    Args:
        task_class: The zoo task.
        config: The family config to widen (``vocab_size`` and the special ids must match ``data``'s
            tokenizer: ``data.vocab_size`` after ``prepare_data``).
        data: A prepared zoo data module.
        width: The model's ``embed_dim``.
        lr: The task's ``lr`` (AdamW's; under μP the rate at base width).
        steps: Optimizer steps; the cosine schedule runs over them (``max_steps``).
        parametrization: ``standard`` or ``mup``.
        base_width: μP's base width (needed by ``mup``).
        optimizer: ``adamw`` or ``muon``; ``muon`` takes its settings from ``muon`` (e.g. ``{"lr": 0.02}``).
        muon: Muon's settings (``zoo.tasks.optimizers.MuonConfig`` fields).
        seed: Seeds the initialisation (``lightning.seed_everything``); the data keeps its own seed.
        warmup_steps: Linear warmup steps.
        val_batches: Validation batches at the end (an int) or a fraction of them.
        gradient_clip_val: Clip the global gradient norm (None = no clipping).
        precision: Lightning's precision, e.g. ``bf16-mixed`` (None = fp32).
        **task_kwargs: Further task arguments (``weight_decay``, ``betas``, ``min_lr_ratio``, ...).
    """
    L.seed_everything(seed, verbose=False)
    widened = widen(config, width, parametrization=parametrization, base_width=base_width)
    task = task_class(widened, lr=lr, warmup_steps=warmup_steps, max_steps=steps, optimizer=optimizer,
                      muon=dict(muon) if muon is not None else None, **task_kwargs)
    return train(task, data, max_steps=steps, val_batches=val_batches, gradient_clip_val=gradient_clip_val,
                 precision=precision)


def final_val_loss(*args: Any, **kwargs: Any) -> float:
    """``train_at_width(...)``'s final validation loss; ``inf`` when the run diverged (its loss
    turned NaN or infinite), so the best rate of a sweep is its ``min``."""
    history = train_at_width(*args, **kwargs)
    return math.inf if history.diverged else history.final_val_loss
