"""One boolean mask convention for the whole code base.

A mask is a bool tensor where **True means "this key may be attended to"** — the same convention as
``F.scaled_dot_product_attention``'s boolean ``attn_mask`` and Hugging Face's ``attention_mask == 1``.
Shapes: b batch, t query len, s key len; masks broadcast against attention scores ``(b, h, t, s)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(t: int, s: int, device: torch.device | None = None) -> Tensor:
    """Lower-triangular mask for ``t`` queries that are the *last* ``t`` of ``s`` keys.

    With a KV cache the queries start at absolute position ``s - t``, so query ``i`` sees keys
    ``0 .. s - t + i``.

    Returns:
        Bool tensor of shape ``(t, s)``.
    """
    return torch.ones(t, s, dtype=torch.bool, device=device).tril(diagonal=s - t)


def sliding_window_mask(t: int, s: int, window: int, causal: bool, device: torch.device | None = None) -> Tensor:
    """Mask of ``t`` queries, the last ``t`` of ``s`` keys, that see only keys less than ``window``
    positions away: a causal query itself and ``window - 1`` keys before it (Mistral's convention),
    a bidirectional one ``window - 1`` keys on either side.

    Returns:
        Bool tensor of shape ``(t, s)``.
    """
    queries = torch.arange(s - t, s, device=device)[:, None]
    distance = queries - torch.arange(s, device=device)[None]  # (t, s), query minus key position
    if causal:
        return (distance >= 0) & (distance < window)
    return distance.abs() < window


def padding_mask(attention_mask: Tensor) -> Tensor:
    """Turn a per-key ``(b, s)`` mask (True = real token) into a broadcastable ``(b, 1, 1, s)``."""
    if attention_mask.dtype != torch.bool:
        attention_mask = attention_mask.bool()
    return attention_mask[:, None, None, :]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """AND together any number of broadcastable boolean masks; ``None`` entries are skipped."""
    out = None
    for mask in masks:
        if mask is not None:
            out = mask if out is None else out & mask
    return out


def unblock_empty_rows(mask: Tensor) -> Tensor:
    """Let query rows that see no key at all attend everywhere.

    A left-padded query under a causal mask can have every key masked; softmax over an empty row is
    NaN, and NaN spreads to real tokens through the next layer's keys. Those rows are padding whose
    outputs are ignored, so any finite value will do.
    """
    return mask | ~mask.any(dim=-1, keepdim=True)


def attention_bias_to_mask(bias: Tensor | None, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Fold a boolean mask into an additive float bias (``None`` when there is neither)."""
    if mask is None:
        return bias
    if bias is None:
        return mask
    return bias.to(dtype).masked_fill(~mask, torch.finfo(dtype).min)
