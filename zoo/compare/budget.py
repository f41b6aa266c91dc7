"""Matched budgets: parameter counts, sizes that hit a parameter target, and the steps a token or
FLOP budget buys."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.compare.adapters import data_lengths
from zoo.compare.config import Budget
from zoo.compare.data import TaskData
from zoo.models.config import TransformerConfig
from zoo.models.registry import get_family

if TYPE_CHECKING:
    from zoo.compare.modules import SuiteTask

_INIT_FUNCTIONS = ("normal_", "ones_", "zeros_", "uniform_", "kaiming_uniform_", "trunc_normal_", "constant_")


@contextlib.contextmanager
def _shapes_only() -> Iterator[None]:
    """Build modules on the meta device with ``torch.nn.init`` switched off: shapes are all a
    parameter count needs, and initialising meta tensors costs ~15x the construction itself."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def non_embedding_parameters(family: str, config: TransformerConfig, num_classes: int = 0) -> int:
    """Non-embedding parameters of ``family`` built from ``config``, plus a classification head
    when ``num_classes`` is set — the basis of matched-parameter comparisons. Costs no memory
    (meta device) and a few milliseconds."""
    with _shapes_only():
        model = get_family(family).model_class(config)
    head = config.embed_dim * num_classes + num_classes if num_classes else 0
    return model.num_parameters(exclude_embeddings=True) + head


def _candidates(name: str, fields: dict[str, Any], base: TransformerConfig) -> list[int]:
    if name == "embed_dim":
        # Heads must divide the width, and rotary / sinusoidal positions need even head and model widths.
        unit = 2 if fields.get("head_dim") else 2 * base.num_heads
        return list(range(unit, 8192 + 1, unit))
    if name == "ffn_dim":
        return list(range(8, 32 * int(fields.get("embed_dim", base.embed_dim)) + 1, 8))
    return list(range(1, 97))  # num_layers


def _closest(values: Sequence[int], params_at: Callable[[int], int], target: int) -> int:
    """The value whose parameter count is nearest ``target``, for counts increasing with the value."""
    low, high = 0, len(values) - 1
    while low < high:  # first value at or above the target
        middle = (low + high) // 2
        if params_at(values[middle]) >= target:
            high = middle
        else:
            low = middle + 1
    return min({values[max(low - 1, 0)], values[low]}, key=lambda v: abs(params_at(v) - target))


def match_parameters(
    make: Callable[[dict[str, Any]], TransformerConfig],
    count: Callable[[TransformerConfig], int],
    fields: dict[str, Any],
    budget: Budget,
    what: str,
) -> tuple[TransformerConfig, int]:
    """Search ``budget.match`` fields in turn for the size closest to ``budget.params``.

    Each field's parameter count grows with it, so a bisection finds the first value at or above
    the target, and the closer of it and its predecessor wins.

    Raises:
        ValueError: The closest size misses the target by more than the tolerance.
    """
    target = budget.params
    assert target is not None
    chosen = dict(fields)
    for name in budget.match:
        values = _candidates(name, chosen, make(chosen))
        chosen[name] = _closest(values, lambda value: count(make({**chosen, name: value})), target)  # noqa: B023
    config = make(chosen)
    params = count(config)
    miss = abs(params - target) / target
    if miss > budget.tolerance:
        sizes = ", ".join(f"{n}={getattr(config, n)}" for n in budget.match)
        raise ValueError(
            f"{what}: the closest size ({sizes}) has {params:,} non-embedding parameters, {miss:.0%} off the "
            f"target {target:,} (tolerance {budget.tolerance:.0%}); match by other fields (budget.match) or "
            f"change the target"
        )
    return config, params


def steps_for_budget(module: SuiteTask, data: TaskData, batch_size: int, budget: Budget, default: int) -> int:
    """Steps the token / FLOP budget buys at this entry's average cost per training batch."""
    if not (budget.tokens or budget.flops):
        return default
    work = module.runner.work(data.kind, data_lengths(data, ("train",)))
    per_example = (work.tokens if budget.tokens else module.flops(work)) / len(data.examples["train"])
    return max(1, math.ceil((budget.tokens or budget.flops) / (per_example * batch_size)))
