"""Transformer layers: ``EncoderLayer`` (self-attention + feed-forward) and ``DecoderLayer``
(adds cross-attention to an encoder's output). Residual placement is ``pre`` or ``post`` norm.

Shapes: b batch, t query len, s context len, e embed dim.
pre-norm:  ``x = x + dropout(f(norm(x)))``   (GPT-2, T5, LLaMA)
post-norm: ``x = norm(x + dropout(f(x)))``   (the original Transformer, BERT)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

from zoo.blocks.attention import AttnImplementation, KVCache, MultiHeadAttention
from zoo.blocks.feed_forward import FeedForward, default_ffn_dim
from zoo.blocks.norms import build_norm

NormPlacement = Literal["pre", "post"]


class LayerCache:
    """Per-layer decoding state: self-attention keys/values and (decoders) cross-attention ones."""

    def __init__(self) -> None:
        self.self_attn = KVCache()
        self.cross_attn = KVCache()

    def reserve(self, capacity: int) -> None:
        """Preallocate self-attention keys/values for ``capacity`` positions."""
        self.self_attn.capacity = capacity

    def reorder(self, index: Tensor) -> None:
        self.self_attn.reorder(index)
        self.cross_attn.reorder(index)


class EncoderLayer(nn.Module):
    """Self-attention (optionally causal) followed by a feed-forward block, each in a residual.

    Args:
        embed_dim: Model width.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (GQA/MQA when fewer than ``num_heads``).
        ffn_dim: Feed-forward hidden width.
        activation: Feed-forward activation name (see ``zoo.blocks.feed_forward.ACTIVATIONS``).
        norm: Norm name (see ``zoo.blocks.norms.NORMS``).
        norm_placement: ``pre`` or ``post``.
        norm_eps: Norm epsilon.
        dropout: Dropout on residual branches and attention weights.
        bias: Biases in linear layers and LayerNorm.
        head_dim: Per-head width (defaults to ``embed_dim // num_heads``).
        attention_scale: Score scale (``None`` = ``1/sqrt(head_dim)``).
        attn_implementation: ``sdpa`` or ``eager``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        ffn_dim: int | None = None,
        activation: str = "gelu",
        norm: str = "layernorm",
        norm_placement: NormPlacement = "pre",
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        bias: bool = True,
        head_dim: int | None = None,
        attention_scale: float | None = None,
        attn_implementation: AttnImplementation = "sdpa",
    ):
        super().__init__()
        if norm_placement not in ("pre", "post"):
            raise ValueError(f"norm_placement={norm_placement!r} is not valid; choose 'pre' or 'post'")
        self.pre_norm = norm_placement == "pre"
        self._attention_args = dict(
            embed_dim=embed_dim, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
            dropout=dropout, bias=bias, scale=attention_scale, attn_implementation=attn_implementation,
        )
        self._norm_args = dict(name=norm, dim=embed_dim, eps=norm_eps, bias=bias)
        self.self_attn = MultiHeadAttention(**self._attention_args)
        self.self_attn_norm = build_norm(**self._norm_args)
        self.ffn = FeedForward(embed_dim, ffn_dim or default_ffn_dim(embed_dim, activation), activation, bias=bias)
        self.ffn_norm = build_norm(**self._norm_args)
        self.dropout = nn.Dropout(dropout)

    def residual(self, x: Tensor, norm: nn.Module, fn: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + self._dropout(fn(norm(x)))
        return norm(x + self._dropout(fn(x)))

    def _dropout(self, x: Tensor) -> Tensor:
        # Skipping the module call outside training matters when decoding one token at a time.
        return self.dropout(x) if self.training else x

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """``x`` ``(b, t, e)`` → ``(b, t, e)``; arguments as in ``MultiHeadAttention.forward``."""
        self_cache = cache.self_attn if cache is not None else None
        x = self.residual(
            x, self.self_attn_norm,
            lambda h: self.self_attn(h, mask=mask, bias=bias, is_causal=is_causal, rope=rope, cache=self_cache),
        )
        return self.residual(x, self.ffn_norm, self.ffn)


class DecoderLayer(EncoderLayer):
    """An ``EncoderLayer`` with cross-attention to ``context`` between self-attention and the
    feed-forward block (the encoder-decoder layer of Vaswani et al. and T5). Same arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cross_attn = MultiHeadAttention(**self._attention_args, cross_attention=True)
        self.cross_attn_norm = build_norm(**self._norm_args)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        context_mask: Tensor | None = None,
        bias: Tensor | None = None,
        is_causal: bool = True,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """``x`` ``(b, t, e)`` attends to itself, then to ``context`` ``(b, s, e)``."""
        self_cache = cache.self_attn if cache is not None else None
        cross_cache = cache.cross_attn if cache is not None else None
        x = self.residual(
            x, self.self_attn_norm,
            lambda h: self.self_attn(h, mask=mask, bias=bias, is_causal=is_causal, rope=rope, cache=self_cache),
        )
        x = self.residual(
            x, self.cross_attn_norm, lambda h: self.cross_attn(h, context, mask=context_mask, cache=cross_cache)
        )
        return self.residual(x, self.ffn_norm, self.ffn)
