"""Normalisation layers, chosen by name: ``layernorm``, ``rmsnorm``, ``rmsnorm_plus_one`` or ``none``.

Shapes: ``(..., d)`` in, same shape out; every norm acts over the last (feature) dimension.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

NormName = Literal["layernorm", "rmsnorm", "rmsnorm_plus_one", "none"]


class RMSNormPlusOne(nn.Module):
    """RMSNorm whose scale is ``1 + weight``, the weight starting at zero (Gemma's parametrisation:
    weight decay, if any, pulls the scale to one rather than zero). Computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.square().mean(dim=-1, keepdim=True) + self.eps)
        return (h * (1.0 + self.weight.float())).to(x.dtype)


def _layernorm(dim: int, eps: float, bias: bool) -> nn.Module:
    return nn.LayerNorm(dim, eps=eps, bias=bias)


def _rmsnorm(dim: int, eps: float, bias: bool) -> nn.Module:
    # RMSNorm has no mean subtraction and no bias by definition (Zhang & Sennrich, 2019).
    return nn.RMSNorm(dim, eps=eps)


def _rmsnorm_plus_one(dim: int, eps: float, bias: bool) -> nn.Module:
    return RMSNormPlusOne(dim, eps=eps)


def _identity(dim: int, eps: float, bias: bool) -> nn.Module:
    return nn.Identity()


NORMS = {"layernorm": _layernorm, "rmsnorm": _rmsnorm, "rmsnorm_plus_one": _rmsnorm_plus_one, "none": _identity}


def build_norm(name: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """Build the norm called ``name`` over a feature dimension of size ``dim``.

    Args:
        name: One of ``NORMS``: ``layernorm``, ``rmsnorm``, ``rmsnorm_plus_one`` or ``none`` (identity).
        dim: Feature size.
        eps: Added to the variance for numerical stability.
        bias: Whether LayerNorm has a learned shift (ignored by the others).
    """
    if name not in NORMS:
        raise ValueError(f"norm={name!r} is not a known norm; choose one of {sorted(NORMS)}")
    return NORMS[name](dim, eps, bias)
