"""``sdpa_attention``: ``F.scaled_dot_product_attention``, except for short low-precision training
sequences on a CPU, where the math path is faster.

PyTorch's CPU flash-attention kernel splits queries into blocks of 32 rows below 192 of them, and
its bf16 backward is slow at that block size: training a GPT-2-shaped model (width 256, 4 layers,
sequence 128, bf16 autocast) spent a quarter of each step in that backward — 70 ms against 8 ms for
the forward (torch.profiler, one thread). The math path (two batched matmuls and a softmax, which
``torch.compile`` fuses) made the whole step 18 % faster eager and 24 % compiled; at 256 keys the two
were even, at 512 the flash kernel led, and in float32 they were even at 128. So the math path is
taken only where it was measured to win: CPU, bf16/fp16, gradients recorded, fewer than 192 keys. It
materialises the ``(b, h, t, s)`` scores, which at these lengths is smaller than one activation.

Shapes: b batch, h query heads, k key/value heads, t query len, s key len, d head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Below this many keys the CPU flash kernel's backward uses its smallest query blocks (see above).
MATH_BELOW_KEYS = 192


def prefers_math(q: Tensor, k: Tensor) -> bool:
    """Whether ``sdpa_attention`` takes the math path for these queries and keys."""
    return (q.device.type == "cpu" and q.requires_grad and q.dtype in (torch.bfloat16, torch.float16)
            and k.shape[-2] < MATH_BELOW_KEYS)


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``F.scaled_dot_product_attention`` (same arguments, same result within rounding); ``q``
    ``(b, h, t, d)``, ``k``/``v`` ``(b, k, s, d)``."""
    if prefers_math(q, k):
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # as F.scaled_dot_product_attention does
            attn_mask = torch.zeros((), dtype=q.dtype, device=q.device).masked_fill(~attn_mask, float("-inf"))
        out, _ = torch.ops.aten._scaled_dot_product_attention_math(
            q, k, v, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        return out
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                          scale=scale, enable_gqa=enable_gqa)
