"""Logit softcapping (Gemma 2): ``cap · tanh(x / cap)`` bounds logits smoothly to ``(-cap, cap)``,
near the identity for ``|x|`` well below ``cap``. Used on attention scores and on final logits."""

from __future__ import annotations

import torch
from torch import Tensor


def softcap(x: Tensor, cap: float | None) -> Tensor:
    """``cap · tanh(x / cap)`` of any shape; ``cap=None`` returns ``x`` unchanged."""
    if cap is None:
        return x
    return cap * torch.tanh(x / cap)
