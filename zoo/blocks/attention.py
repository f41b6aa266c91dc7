"""Multi-head attention for self, causal-self and cross attention, with MHA / GQA / MQA and a KV cache.

Shapes: b batch, t query len, s key len, h query heads, k key/value heads, d head dim, e embed dim.
Masks follow ``zoo.blocks.masks``: bool, True = may attend.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.masks import attention_bias_to_mask, causal_mask, combine_masks, unblock_empty_rows
from zoo.blocks.positions import apply_rotary

AttnImplementation = Literal["sdpa", "eager"]


def eager_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """Plain softmax(QKᵀ·scale + mask)·V: the reference that the fused SDPA path is tested against.

    Same arguments as ``F.scaled_dot_product_attention``. ``q`` is ``(b, h, t, d)``; ``k``/``v`` are
    ``(b, k, s, d)``. One difference: with ``is_causal`` and ``t < s`` the queries are taken as the
    *last* ``t`` positions (a KV cache), where SDPA aligns them with the first; ``MultiHeadAttention``
    passes ``is_causal`` only when ``t == s``, where the two agree.
    """
    t, s = q.shape[-2], k.shape[-2]
    if enable_gqa and k.shape[1] != q.shape[1]:
        repeats = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(repeats, dim=1), v.repeat_interleave(repeats, dim=1)  # (b, h, s, d)
    scores = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    if is_causal:
        scores = scores.masked_fill(~causal_mask(t, s, q.device), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = F.dropout(scores.float().softmax(dim=-1).to(q.dtype), p=dropout_p)
    return weights @ v  # (b, h, t, d)


ATTENTION_FUNCTIONS = {"sdpa": F.scaled_dot_product_attention, "eager": eager_attention}


def prepare_attention_mask(
    t: int,
    s: int,
    mask: Tensor | None,
    bias: Tensor | None,
    is_causal: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor | None, bool]:
    """Fold a bool ``mask``, a float ``bias`` and causality into what the kernel takes.

    Queries are the last ``t`` of ``s`` positions. Fused kernels apply only when the causal
    structure is the plain square one with no extras; a single query (a decoding step) sees every
    key, so it needs no causal mask at all.

    Returns:
        ``(attn_mask, is_causal)``: a bool mask or float bias broadcastable to ``(b, h, t, s)``
        (or None), and whether to ask the kernel for its own causal mask.
    """
    if is_causal and t == 1:
        is_causal = False
    fast_causal = is_causal and mask is None and bias is None and t == s
    if is_causal and not fast_causal:
        mask = combine_masks(causal_mask(t, s, device), mask)
    if mask is not None:
        mask = unblock_empty_rows(mask)
    return attention_bias_to_mask(bias, mask, dtype), fast_causal


class KVCache:
    """Keys and values of one attention layer, ``k``/``v`` of shape ``(b, k, s, d)``.

    For self-attention they grow by the new tokens each step; for cross-attention they are the
    projected encoder output, computed on the first step and reused after.

    Growing writes into a preallocated buffer (``k``/``v`` are views of its filled part) instead of
    concatenating, which would copy the whole history every step. The buffer holds ``capacity``
    keys when that is set (``reserve``), else it doubles when full. With autograd recording, it
    concatenates: writing into a buffer would invalidate views saved for backward.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.capacity = capacity
        self._buffers: tuple[Tensor, Tensor] | None = None  # (b, k, capacity, d) each

    @property
    def seq_len(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.seq_len, k.shape[2]
        if k.requires_grad or v.requires_grad:
            if self.k is not None:
                k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
            self.k, self.v, self._buffers = k, v, None
            return k, v
        if self.k is None and self.capacity <= t:  # nothing more expected yet: keep the tensors as they are
            self.k, self.v = k, v
            return k, v
        if self._buffers is None or s + t > self._buffers[0].shape[2]:
            b, h, _, d = k.shape
            size = max(self.capacity, 2 * (s + t))
            buffers = k.new_empty(b, h, size, d), v.new_empty(b, h, size, d)
            if s:
                buffers[0].narrow(2, 0, s).copy_(self.k)
                buffers[1].narrow(2, 0, s).copy_(self.v)
            self._buffers = buffers
        k_buffer, v_buffer = self._buffers
        k_buffer.narrow(2, s, t).copy_(k)
        v_buffer.narrow(2, s, t).copy_(v)
        self.k, self.v = k_buffer.narrow(2, 0, s + t), v_buffer.narrow(2, 0, s + t)
        return self.k, self.v

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (beam search reshuffles hypotheses each step)."""
        if self.k is None:
            return
        if self._buffers is None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)
            return
        s = self.seq_len
        self._buffers = tuple(buffer.index_select(0, index) for buffer in self._buffers)
        self.k, self.v = self._buffers[0].narrow(2, 0, s), self._buffers[1].narrow(2, 0, s)


class MultiHeadAttention(nn.Module):
    """One attention class for self, causal-self and cross attention.

    Self-attention projects queries, keys and values with one fused ``qkv_proj``; cross-attention
    projects queries from ``x`` (``q_proj``) and keys/values from ``context`` (``kv_proj``).

    Args:
        embed_dim: Model width ``e``.
        num_heads: Query heads ``h``.
        num_kv_heads: Key/value heads ``k``: ``num_heads`` for MHA, fewer for GQA, 1 for MQA.
        head_dim: Per-head width; defaults to ``embed_dim // num_heads``.
        dropout: Dropout on the attention weights while training.
        bias: Whether the projections have biases.
        cross_attention: Project keys/values from a separate ``context``.
        scale: Score scale; ``None`` is the usual ``1/sqrt(head_dim)`` (T5 uses 1.0).
        attn_implementation: ``sdpa`` (fused kernels) or ``eager`` (the plain reference).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        cross_attention: bool = False,
        scale: float | None = None,
        attn_implementation: AttnImplementation = "sdpa",
    ):
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if head_dim is None and embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} must be divisible by num_kv_heads={num_kv_heads}")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or embed_dim // num_heads
        self.dropout, self.scale = dropout, scale
        self.attention_fn = ATTENTION_FUNCTIONS[attn_implementation]
        q_dim, kv_dim = num_heads * self.head_dim, num_kv_heads * self.head_dim
        self.split_sizes = [q_dim, kv_dim, kv_dim]  # rows of qkv_proj: queries, keys, values
        if cross_attention:
            self.q_proj = nn.Linear(embed_dim, q_dim, bias=bias)
            self.kv_proj = nn.Linear(embed_dim, 2 * kv_dim, bias=bias)
        else:
            self.qkv_proj = nn.Linear(embed_dim, q_dim + 2 * kv_dim, bias=bias)
        self.out_proj = nn.Linear(q_dim, embed_dim, bias=bias)
        self.cross_attention = cross_attention

    def _heads(self, x: Tensor, n: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # (b, n, t, d)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Attend from ``x`` ``(b, t, e)`` to itself, or to ``context`` ``(b, s, e)``.

        Args:
            mask: Bool mask broadcastable to ``(b, h, t, s)``, True = may attend.
            bias: Float bias broadcastable to ``(b, h, t, s)`` added to the scores (ALiBi, T5) — or
                a mask already made by ``prepare_attention_mask`` (bool or float), used as given:
                a stack prepares it once for all its layers.
            is_causal: Queries are the last ``t`` of ``s`` positions and see no later key.
            rope: ``(cos, sin)`` for the new tokens, applied to queries and keys (self-attention).
            cache: Keys/values of earlier steps; updated in place.
        """
        b, t, _ = x.shape
        if self.cross_attention:
            if context is None:
                raise ValueError("cross-attention needs a context (the encoder output)")
            q = self._heads(self.q_proj(x), self.num_heads)  # (b, h, t, d)
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v  # encoder keys/values never change during decoding
            else:
                kv = self._heads(self.kv_proj(context), 2 * self.num_kv_heads)  # (b, 2k, s, d)
                k, v = kv.split_with_sizes([self.num_kv_heads, self.num_kv_heads], dim=1)
                if cache is not None:
                    cache.append(k, v)
        else:
            # Heads first, then one split (and one rotation of queries and keys together): fewer
            # small ops, which is what a one-token decoding step is made of.
            h, kv_heads = self.num_heads, self.num_kv_heads
            qkv = self._heads(self.qkv_proj(x), h + 2 * kv_heads)  # (b, h + 2k, t, d)
            if rope is not None:
                qk, v = qkv.split_with_sizes([h + kv_heads, kv_heads], dim=1)
                q, k = apply_rotary(qk, *rope).split_with_sizes([h, kv_heads], dim=1)
            else:
                q, k, v = qkv.split_with_sizes([h, kv_heads, kv_heads], dim=1)  # (b, h, t, d), (b, k, t, d)
            if cache is not None:
                k, v = cache.append(k, v)  # (b, k, s, d)
        attn_mask, is_causal = prepare_attention_mask(t, k.shape[2], mask, bias, is_causal, q.dtype, x.device)
        out = self.attention_fn(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )  # (b, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))
