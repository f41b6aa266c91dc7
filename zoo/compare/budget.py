"""Matched budgets: parameter counts (non-embedding; a mixture of experts counts the experts a token
is routed to) and the sizes that hit a parameter target. What a token or FLOP budget buys is
``zoo.compare.plan``'s (from ``zoo.flops``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from zoo.blocks.moe import MixtureOfExperts
from zoo.compare.config import Budget
from zoo.models.config import TransformerConfig
from zoo.models.registry import get_family

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


def non_embedding_parameters(family: str, config: TransformerConfig, num_classes: int = 0, *,
                             active: bool = False) -> int:
    """Non-embedding parameters of ``family`` built from ``config``, plus a classification head
    when ``num_classes`` is set — the basis of matched-parameter comparisons. ``active``: of a
    mixture of experts only the ``experts_per_token`` experts each token runs (the router and the
    rest of the layer count whole). Costs no memory (meta device) and a few milliseconds."""
    with _shapes_only():
        model = get_family(family).model_class(config)
    head = config.embed_dim * num_classes + num_classes if num_classes else 0
    idle = 0
    if active:
        for moe in (m for m in model.modules() if isinstance(m, MixtureOfExperts)):
            per_expert = sum(p.numel() for p in moe.experts[0].parameters())
            idle += per_expert * (len(moe.experts) - moe.top_k)
    return model.num_parameters(exclude_embeddings=True) + head - idle


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
