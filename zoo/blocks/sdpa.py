"""``sdpa_attention``: ``F.scaled_dot_product_attention``, except for low-precision training on a
CPU, where two other routes are faster: the math path for short sequences, and — inside a compiled
model — the flash forward with a block-wise backward that the compiler fuses.

PyTorch's CPU flash-attention kernel splits queries into blocks of 32 rows below 192 of them, and
its bf16 backward is slow at that block size: training a GPT-2-shaped model (width 256, 4 layers,
sequence 128, bf16 autocast) spent a quarter of each step in that backward — 70 ms against 8 ms for
the forward (torch.profiler, one thread). The math path (two batched matmuls and a softmax, which
``torch.compile`` fuses) made the whole step 18 % faster eager and 24 % compiled; at 256 keys the two
were even, at 512 the flash kernel led, and in float32 they were even at 128. So the math path is
taken only where it was measured to win: CPU, bf16/fp16, gradients recorded, fewer than 192 keys. It
materialises the ``(b, h, t, s)`` scores, which at these lengths is smaller than one activation.
Inside ``torch.compile`` it is written out as tensor code (``_compiled_math_attention``), because
the ATen op's guard for fully masked rows compiles to slow boolean kernels on a CPU.

From 192 to 512 keys the flash forward is fast but its bf16 backward is not (a GPT-2-shaped step at
sequence 512 spent a third of its time in attention, the backward 5× the forward). Inside a compiled
model (``torch.compile`` / ``--compile.enabled``) attention there runs as ``_FlashBlockwise``: the
flash kernel's forward, which also returns each row's log-sum-exp, and a backward written as plain
tensor code a block of 128 query rows at a time — recompute the probabilities from the saved
log-sum-exp, then five matmuls — which inductor fuses into a few kernels: 1.2–1.6× the flash
kernel's forward + backward at 512 keys and 1.6× at 256 (bf16, causal, 4 heads of 64; ``python
benchmarks/attention.py``, its kernel table), causal or bidirectional. Eager stays on the flash
kernel: unfused, this backward is slower.

Shapes: b batch, h query heads, k key/value heads, t query len, s key len, d head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Below this many keys the CPU flash kernel's backward uses its smallest query blocks (see above).
MATH_BELOW_KEYS = 192
# Up to this many keys a compiled model takes the flash forward with the block-wise backward (measured
# faster to 512; even at 1024).
BLOCKWISE_MAX_KEYS = 512
# Query rows per block of the block-wise backward.
BLOCKWISE_ROWS = 128


def repeat_kv_heads(k: Tensor, v: Tensor, num_heads: int) -> tuple[Tensor, Tensor]:
    """``k``, ``v`` ``(b, k, s, d)`` with each key/value head repeated for its query heads
    (grouped-query attention), ``(b, num_heads, s, d)``; unchanged when the counts match."""
    if k.shape[1] == num_heads:
        return k, v
    repeats = num_heads // k.shape[1]
    return k.repeat_interleave(repeats, dim=1), v.repeat_interleave(repeats, dim=1)


def prefers_math(q: Tensor, k: Tensor) -> bool:
    """Whether ``sdpa_attention`` takes the math path for these queries and keys."""
    return (q.device.type == "cpu" and q.requires_grad and q.dtype in (torch.bfloat16, torch.float16)
            and k.shape[-2] < MATH_BELOW_KEYS)


def prefers_blockwise(q: Tensor, k: Tensor, attn_mask: Tensor | None, dropout_p: float, is_causal: bool) -> bool:
    """Whether ``sdpa_attention`` takes the flash forward with the block-wise backward: CPU, bf16/fp16,
    gradients recorded, inside ``torch.compile``, no mask tensor or dropout, queries aligned with the
    keys (causal or not), 192–512 keys."""
    return (q.device.type == "cpu" and q.requires_grad and q.dtype in (torch.bfloat16, torch.float16)
            and torch.compiler.is_compiling() and attn_mask is None and dropout_p == 0.0
            and q.shape[-2] == k.shape[-2] and MATH_BELOW_KEYS <= k.shape[-2] <= BLOCKWISE_MAX_KEYS)


class _FlashBlockwise(torch.autograd.Function):
    """The CPU flash kernel's forward; the backward a block of query rows at a time.

    With the output ``o``, the row log-sum-exp ``L`` and ``D = rowsum(dO ∘ o)``, each block of rows
    recomputes ``P = exp(QKᵀ·scale − L)`` over the keys it can see and accumulates
    ``dV += Pᵀ dO``, ``dS = P ∘ (dO Vᵀ − D)``, ``dQ = dS K·scale``, ``dK += dSᵀ Q·scale``. ``QKᵀ`` is
    recomputed in float32 (rounding the scores to bf16 first put the gradients of bidirectional
    attention 2–3× further from float64 than the kernel's; in float32 they are as close, at the
    same speed: it is the smallest of the five products)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float) -> Tensor:  # type: ignore[override]
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, is_causal, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.is_causal, ctx.scale = is_causal, scale
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None]:  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        is_causal, scale, t = ctx.is_causal, ctx.scale, q.shape[-2]
        grad_out = grad_out.contiguous()
        delta = (grad_out.float() * out.float()).sum(-1, keepdim=True)  # (b, h, t, 1)
        k_float = k.float()
        grad_q = []
        grad_k, grad_v = (x.new_zeros(x.shape, dtype=torch.float32) for x in (k, v))
        for start in range(0, t, BLOCKWISE_ROWS):
            stop = min(t, start + BLOCKWISE_ROWS)
            seen = stop if is_causal else t  # the keys this block's rows can see (t == s)
            q_block, grad_block = q[:, :, start:stop], grad_out[:, :, start:stop]
            k_seen, v_seen = k[:, :, :seen], v[:, :, :seen]
            scores = (q_block.float() @ k_float[:, :, :seen].transpose(-1, -2)) * scale  # (b, h, rows, seen)
            probs = (scores - lse[:, :, start:stop, None]).exp()
            if is_causal:
                rows = torch.arange(start, stop, device=q.device)[:, None]
                probs = probs.masked_fill(torch.arange(seen, device=q.device)[None, :] > rows, 0.0)
            grad_v[:, :, :seen] += (probs.to(q.dtype).transpose(-1, -2) @ grad_block).float()
            grad_scores = (probs * ((grad_block @ v_seen.transpose(-1, -2)).float() - delta[:, :, start:stop]))
            grad_scores = grad_scores.to(q.dtype)
            grad_q.append((grad_scores @ k_seen) * scale)
            grad_k[:, :, :seen] += (grad_scores.transpose(-1, -2) @ q_block).float() * scale
        return torch.cat(grad_q, dim=2), grad_k.to(k.dtype), grad_v.to(v.dtype), None, None


def _compiled_math_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, is_causal: bool,
                             scale: float | None) -> Tensor:
    """The math path as plain tensor code for ``torch.compile``: scores, float32 softmax, values.

    ATen's math op guards rows whose keys are all masked with ``_safe_softmax`` (``x == -inf`` and a
    ``where`` over every score), and inside a compiled CPU graph those boolean kernels were slow:
    about 24 ms of a T5 bf16 training step at sequence 128 (torch.profiler, inductor's kernel
    profile; the same family of kernels as ``zoo.blocks.feed_forward._ReLU``'s). Here the guard is
    per row and mask-free: the row max is clamped to a finite number (a fully masked row then has
    ``exp(-inf) = 0`` everywhere) and the row sum to at least 1 (any other row's is: its max adds
    ``exp(0)``), so such a row comes out 0, as SDPA's does, with no comparison over the scores.
    Causal is SDPA's top-left diagonal."""
    k, v = repeat_kv_heads(k, v, q.shape[1])
    scores = (q @ k.transpose(-1, -2)).float() * (scale if scale is not None else q.shape[-1] ** -0.5)
    if is_causal:
        t, s = scores.shape[-2:]
        scores = scores + torch.full((t, s), float("-inf"), device=q.device).triu(1)
    if attn_mask is not None:
        scores = scores + attn_mask
    finfo = torch.finfo(torch.float32)
    # The shift leaves the softmax unchanged, so no gradient flows through it (amax's backward
    # would compare every score with the max).
    exp = (scores - scores.detach().amax(-1, keepdim=True).clamp_min(finfo.min)).exp()
    probs = exp / exp.sum(-1, keepdim=True).clamp_min(1.0)  # a row's max adds exp(0) = 1: only empty rows move
    return probs.to(q.dtype) @ v


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
        if torch.compiler.is_compiling() and dropout_p == 0.0:
            return _compiled_math_attention(q, k, v, attn_mask, is_causal, scale)
        out, _ = torch.ops.aten._scaled_dot_product_attention_math(
            q, k, v, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        return out
    if prefers_blockwise(q, k, attn_mask, dropout_p, is_causal):
        if enable_gqa:
            k, v = repeat_kv_heads(k, v, q.shape[1])
        return _FlashBlockwise.apply(q, k, v, is_causal, scale if scale is not None else q.shape[-1] ** -0.5)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                          scale=scale, enable_gqa=enable_gqa)
