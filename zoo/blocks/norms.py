"""Normalisation layers, chosen by name: ``layernorm``, ``rmsnorm`` or ``none``.

Shapes: ``(..., d)`` in, same shape out; every norm acts over the last (feature) dimension.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

NormName = Literal["layernorm", "rmsnorm", "none"]


def _layernorm(dim: int, eps: float, bias: bool) -> nn.Module:
    return nn.LayerNorm(dim, eps=eps, bias=bias)


def _rmsnorm(dim: int, eps: float, bias: bool) -> nn.Module:
    # RMSNorm has no mean subtraction and no bias by definition (Zhang & Sennrich, 2019).
    return nn.RMSNorm(dim, eps=eps)


def _identity(dim: int, eps: float, bias: bool) -> nn.Module:
    return nn.Identity()


NORMS = {"layernorm": _layernorm, "rmsnorm": _rmsnorm, "none": _identity}


def build_norm(name: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """Build the norm called ``name`` over a feature dimension of size ``dim``.

    Args:
        name: One of ``NORMS``: ``layernorm``, ``rmsnorm`` or ``none`` (identity).
        dim: Feature size.
        eps: Added to the variance for numerical stability.
        bias: Whether LayerNorm has a learned shift (ignored by the others).
    """
    if name not in NORMS:
        raise ValueError(f"norm={name!r} is not a known norm; choose one of {sorted(NORMS)}")
    return NORMS[name](dim, eps, bias)
