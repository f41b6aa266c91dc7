"""Multi-head attention for self, causal-self and cross attention, with MHA / GQA / MQA, a KV cache,
and the modern options: QK-norm, a sliding window and score softcapping.

Shapes: b batch, t query len, s key len, h query heads, k key/value heads, d head dim, e embed dim.
Masks follow ``zoo.blocks.masks``: bool, True = may attend.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.flex import FlexMask, flex_attention_function
from zoo.blocks.kv_cache import KVCache, SlidingWindowCache
from zoo.blocks.masks import (
    attention_bias_to_mask,
    causal_mask,
    combine_masks,
    sliding_window_mask,
    unblock_empty_rows,
)
from zoo.blocks.positions import apply_rotary
from zoo.blocks.sdpa import repeat_kv_heads, sdpa_attention
from zoo.blocks.softcap import softcap as cap_scores

__all__ = ["KVCache", "MultiHeadAttention", "SlidingWindowCache", "eager_attention", "prepare_attention_mask"]

AttnImplementation = Literal["sdpa", "eager", "flex"]


def eager_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    softcap: float | None = None,
) -> Tensor:
    """Plain softmax(QKᵀ·scale + mask)·V: the reference that the fused SDPA path is tested against.

    Same arguments as ``F.scaled_dot_product_attention``. ``q`` is ``(b, h, t, d)``; ``k``/``v`` are
    ``(b, k, s, d)``. One difference: with ``is_causal`` and ``t < s`` the queries are taken as the
    *last* ``t`` positions (a KV cache), where SDPA aligns them with the first; ``MultiHeadAttention``
    passes ``is_causal`` only when ``t == s``, where the two agree. ``softcap`` caps the scaled
    scores at ``softcap·tanh(scores/softcap)`` before the mask or bias is added (Gemma 2), which
    SDPA cannot do: with it this is the path attention takes.
    """
    t, s = q.shape[-2], k.shape[-2]
    if enable_gqa:
        k, v = repeat_kv_heads(k, v, q.shape[1])  # (b, h, s, d)
    scores = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    scores = cap_scores(scores, softcap)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(t, s, q.device), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = F.dropout(scores.float().softmax(dim=-1).to(q.dtype), p=dropout_p)
    return weights @ v  # (b, h, t, d)


# "sdpa": F.scaled_dot_product_attention, with the math path where it is faster (zoo.blocks.sdpa);
# "flex": FlexAttention for the masks a stack prepares as a ``FlexMask`` (zoo.blocks.flex), SDPA otherwise.
ATTENTION_FUNCTIONS = {"sdpa": sdpa_attention, "eager": eager_attention, "flex": flex_attention_function}


def prepare_attention_mask(
    t: int,
    s: int,
    mask: Tensor | None,
    bias: Tensor | None,
    is_causal: bool,
    dtype: torch.dtype,
    device: torch.device,
    window: int | None = None,
) -> tuple[Tensor | None, bool]:
    """Fold a bool ``mask``, a float ``bias``, causality and a sliding window into what the kernel takes.

    Queries are the last ``t`` of ``s`` positions. Fused kernels apply only when the causal
    structure is the plain square one with no extras; a single query (a decoding step) sees every
    key, so it needs no causal mask at all. A ``window`` of ``s`` or more excludes nothing and is
    dropped, so short sequences keep the fused path.

    Returns:
        ``(attn_mask, is_causal)``: a bool mask or float bias broadcastable to ``(b, h, t, s)``
        (or None), and whether to ask the kernel for its own causal mask.
    """
    windowed = window is not None and window < s
    if is_causal and t == 1 and not windowed:
        is_causal = False
    fast_causal = is_causal and not windowed and mask is None and bias is None and t == s
    if windowed:
        mask = combine_masks(sliding_window_mask(t, s, window, causal=is_causal, device=device), mask)
    elif is_causal and not fast_causal:
        mask = combine_masks(causal_mask(t, s, device), mask)
    if mask is not None:
        mask = unblock_empty_rows(mask)
    return attention_bias_to_mask(bias, mask, dtype), fast_causal


def _stack(projections: Sequence[nn.Linear]) -> tuple[Tensor, Tensor | None]:
    """Weights (and biases) of several linear layers stacked along the output dimension."""
    weight = torch.cat([p.weight for p in projections])
    bias = None if projections[0].bias is None else torch.cat([p.bias for p in projections])
    return weight, bias


@contextlib.contextmanager
def frozen_projections(model: nn.Module) -> Iterator[None]:
    """Within this block the weights of ``model`` do not change (decoding), so each attention layer
    may stack its q/k/v weights once instead of per step. Nothing is kept after it: a training step
    — whatever optimizer, fused or not, updates the weights — never meets a stale stack."""
    blocks = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for block in blocks:
        block._stacked = {}
    try:
        yield
    finally:
        for block in blocks:
            block._stacked = None


class MultiHeadAttention(nn.Module):
    """One attention class for self, causal-self and cross attention.

    Queries, keys and values have their own projections, ``q_proj``, ``k_proj`` and ``v_proj``
    (queries from ``x``; keys and values from ``x``, or from ``context`` in cross-attention), so
    adapters such as LoRA can target each one, as Hu et al. (2021) adapt queries and values only.
    They still run as one matmul (``project``): the speed of a fused QKV projection, without fusing
    the weights. Checkpoints of the fused layout (``qkv_proj``, ``kv_proj``) load into this one.

    Args:
        embed_dim: Model width ``e``.
        num_heads: Query heads ``h``.
        num_kv_heads: Key/value heads ``k``: ``num_heads`` for MHA, fewer for GQA, 1 for MQA.
        head_dim: Per-head width; defaults to ``embed_dim // num_heads``.
        dropout: Dropout on the attention weights while training.
        bias: Whether the projections have biases.
        cross_attention: Project keys/values from a separate ``context``.
        scale: Score scale; ``None`` is the usual ``1/sqrt(head_dim)`` (T5 uses 1.0).
        attn_implementation: ``sdpa`` (fused kernels), ``eager`` (the plain reference) or ``flex``
            (FlexAttention for the biased and masked attention a stack prepares, SDPA otherwise).
        window: Sliding window (self-attention): each query sees keys less than ``window``
            positions away — itself and ``window - 1`` earlier keys when causal. Applied whenever
            this module builds the mask; a stack folds it into the mask it prepares, and its
            cache (``SlidingWindowCache``) keeps only the last ``window - 1`` keys.
        softcap: Cap scaled scores at ``softcap·tanh(scores/softcap)`` (Gemma 2); takes the eager
            path, since SDPA kernels cannot.
        q_norm: Norm over each query head's ``d`` dimensions (QK-norm), applied after the
            projection and before rotary positions, as Qwen3 and Gemma 3 do; one weight shared by
            all heads.
        k_norm: The same for keys.
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
        window: int | None = None,
        softcap: float | None = None,
        q_norm: nn.Module | None = None,
        k_norm: nn.Module | None = None,
    ):
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if head_dim is None and embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} must be divisible by num_kv_heads={num_kv_heads}")
        if window is not None and (window < 1 or cross_attention):
            raise ValueError(f"window={window} must be >= 1, and only self-attention has a sliding window")
        if softcap is not None and softcap <= 0:
            raise ValueError(f"softcap={softcap} must be > 0 (or None for no capping)")
        if (q_norm is None) != (k_norm is None):
            raise ValueError("QK-norm needs both q_norm and k_norm (or neither)")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or embed_dim // num_heads
        self.dropout, self.scale, self.window, self.softcap = dropout, scale, window, softcap
        if softcap is not None:
            self.attention_fn = functools.partial(eager_attention, softcap=softcap)
        else:
            self.attention_fn = ATTENTION_FUNCTIONS[attn_implementation]
        q_dim, kv_dim = num_heads * self.head_dim, num_kv_heads * self.head_dim
        self.split_sizes = [q_dim, kv_dim, kv_dim]  # output widths of q_proj, k_proj, v_proj
        self.q_proj = nn.Linear(embed_dim, q_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, kv_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, kv_dim, bias=bias)
        self.out_proj = nn.Linear(q_dim, embed_dim, bias=bias)
        # Stacked projection weights, kept only inside `frozen_projections` (see `project`).
        self._stacked: dict[tuple[str, ...], tuple[Tensor, Tensor | None]] | None = None
        self._register_load_state_dict_pre_hook(self._split_fused_weights)
        self.q_norm, self.k_norm = q_norm, k_norm
        self.cross_attention = cross_attention

    def project(self, x: Tensor, names: Sequence[str]) -> Tensor:
        """``x`` through the projections called ``names`` (``q_proj``, ...), outputs side by side.

        Plain ``nn.Linear`` projections run as one matmul over their stacked weights, rebuilt each
        call — a copy of the weights, small beside the matmul, through which each weight gets its
        gradient. Inside ``frozen_projections`` (generation) the stack is built once and reused, so
        decoding steps do not copy it per token, and kept transposed, ``(e, out)``: a few rows
        (a decoding step) times the stored ``(out, e)`` layout ran 1.1–1.6× slower on a CPU than
        times its contiguous transpose (a (768, 256) stack, batch 1 and 8). A projection an
        adapter wraps (``peft``'s LoRA layer) is called as a module, each in turn.
        """
        modules = [getattr(self, name) for name in names]
        if not all(type(m) is nn.Linear for m in modules):
            return torch.cat([m(x) for m in modules], dim=-1)
        if self._stacked is None or torch.is_grad_enabled():
            return F.linear(x, *_stack(modules))
        key = tuple(names)
        if key not in self._stacked:
            weight, bias = _stack(modules)
            self._stacked[key] = weight.t().contiguous(), bias
        weight_t, bias = self._stacked[key]  # (e, out)
        rows = x.reshape(-1, x.shape[-1])
        out = rows @ weight_t if bias is None else torch.addmm(bias, rows, weight_t)
        return out.view(*x.shape[:-1], weight_t.shape[1])

    def _split_fused_weights(self, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """Load-time hook: a checkpoint of the fused layout holds ``qkv_proj`` (self-attention) or
        ``kv_proj`` (cross-attention); its rows are the queries, keys and values, in that order."""
        for fused, names in (("qkv_proj", ("q_proj", "k_proj", "v_proj")), ("kv_proj", ("k_proj", "v_proj"))):
            sizes = [getattr(self, name).out_features for name in names]
            for kind in ("weight", "bias"):
                tensor = state_dict.pop(f"{prefix}{fused}.{kind}", None)
                if tensor is not None and tensor.shape[0] == sum(sizes):  # else the size error names it
                    state_dict.update({f"{prefix}{name}.{kind}": part
                                       for name, part in zip(names, tensor.split(sizes), strict=True)})
                elif tensor is not None:
                    state_dict[f"{prefix}{fused}.{kind}"] = tensor

    def _heads(self, x: Tensor, n: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # (b, n, t, d)

    def new_cache(self) -> KVCache:
        """An empty cache for this layer: windowed layers keep only what their window needs."""
        return SlidingWindowCache(self.window) if self.window is not None else KVCache()

    def _self_qkv(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``(b, h, t, d)`` and keys, values ``(b, k, t, d)`` of ``x``, normed and rotated."""
        # Heads first, then one split (and one rotation of queries and keys together): fewer
        # small ops, which is what a one-token decoding step is made of.
        h, kv_heads = self.num_heads, self.num_kv_heads
        qkv = self._heads(self.project(x, ("q_proj", "k_proj", "v_proj")), h + 2 * kv_heads)  # (b, h + 2k, t, d)
        if rope is None and self.q_norm is None:
            return qkv.split_with_sizes([h, kv_heads, kv_heads], dim=1)
        qk, v = qkv.split_with_sizes([h + kv_heads, kv_heads], dim=1)
        if self.q_norm is not None:
            q, k = qk.split_with_sizes([h, kv_heads], dim=1)
            qk = torch.cat((self.q_norm(q), self.k_norm(k)), dim=1)
        if rope is not None:
            qk = apply_rotary(qk, *rope)
        q, k = qk.split_with_sizes([h, kv_heads], dim=1)
        return q, k, v

    def _cross_qkv(self, x: Tensor, context: Tensor | None, cache: KVCache | None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries of ``x`` and keys/values of ``context`` (projected once, then cached)."""
        if context is None:
            raise ValueError("cross-attention needs a context (the encoder output)")
        q = self._heads(self.q_proj(x), self.num_heads)  # (b, h, t, d)
        if self.q_norm is not None:
            q = self.q_norm(q)
        if cache is not None and cache.k is not None:
            return q, cache.k, cache.v  # encoder keys/values never change during decoding
        kv = self._heads(self.project(context, ("k_proj", "v_proj")), 2 * self.num_kv_heads)  # (b, 2k, s, d)
        k, v = kv.split_with_sizes([self.num_kv_heads, self.num_kv_heads], dim=1)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if cache is not None:
            cache.append(k, v)
        return q, k, v

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
                a mask already made by ``prepare_attention_mask`` (bool or float), used as given
                when it comes alone (no ``mask``, not ``is_causal``): a stack prepares it once for
                all its layers, sliding window included.
            is_causal: Queries are the last ``t`` of ``s`` positions and see no later key.
            rope: ``(cos, sin)`` for the new tokens, applied to queries and keys (self-attention).
            cache: Keys/values of earlier steps; updated in place.
        """
        b, t, _ = x.shape
        if self.cross_attention:
            q, k, v = self._cross_qkv(x, context, cache)
        else:
            q, k, v = self._self_qkv(x, rope)
            if cache is not None:
                k, v = cache.append(k, v)  # (b, k, s, d)
        s = k.shape[2]
        # A sliding-window cache holds only the last s keys; masks span every position so far.
        if mask is not None and mask.shape[-1] > s:
            mask = mask[..., -s:]
        if bias is not None and not isinstance(bias, FlexMask) and bias.shape[-1] > s:
            bias = bias[..., -s:]
        if bias is not None and mask is None and not is_causal:
            attn_mask = bias
        else:
            attn_mask, is_causal = prepare_attention_mask(t, s, mask, bias, is_causal, q.dtype, x.device,
                                                          window=self.window)
        out = self.attention_fn(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )  # (b, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))
