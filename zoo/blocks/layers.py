"""Transformer layers: ``EncoderLayer`` (self-attention + feed-forward) and ``DecoderLayer``
(adds cross-attention to an encoder's output). Residual placement is ``pre``, ``post`` or
``sandwich`` norm, and the sub-blocks run one after the other (``sequential``) or side by side
(``parallel``).

Shapes: b batch, t query len, s context len, e embed dim.
pre-norm:  ``x = x + dropout(f(norm(x)))``   (GPT-2, T5, LLaMA)
post-norm: ``x = norm(x + dropout(f(x)))``   (the original Transformer, BERT)
sandwich:  ``x = x + dropout(post_norm(f(norm(x))))``   (Gemma 2: a norm on each branch's output too)
parallel:  ``x = x + attn(norm_1(x)) + ffn(norm_2(x))``   (GPT-J, GPT-NeoX, PaLM; not post-norm)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

from zoo.blocks.attention import KVCache, MultiHeadAttention, SlidingWindowCache

NormPlacement = Literal["pre", "post", "sandwich"]
ResidualName = Literal["sequential", "parallel"]


class LayerCache:
    """Per-layer decoding state: self-attention keys/values and (decoders) cross-attention ones.

    Args:
        window: The self-attention's sliding window: keep only the keys it can still see.
    """

    def __init__(self, window: int | None = None) -> None:
        self.self_attn = SlidingWindowCache(window) if window is not None else KVCache()
        self.cross_attn = KVCache()

    def reserve(self, capacity: int) -> None:
        """Preallocate self-attention keys/values for ``capacity`` positions."""
        self.self_attn.capacity = capacity

    def reorder(self, index: Tensor) -> None:
        self.self_attn.reorder(index)
        self.cross_attn.reorder(index)


class EncoderLayer(nn.Module):
    """Self-attention (optionally causal) followed by a feed-forward block, each in a residual.

    Takes its sub-modules ready-made (``zoo.models.builders.transformer_layer`` builds them from a
    config), so the layer is only the residual wiring.

    Args:
        self_attn: Self-attention.
        ffn: Feed-forward block.
        self_attn_norm: Norm of the attention residual.
        ffn_norm: Norm of the feed-forward residual.
        norm_placement: ``pre``, ``post`` or ``sandwich``.
        dropout: Dropout on the residual branches.
        residual: ``sequential`` (each sub-block reads the previous one's output) or ``parallel``
            (every sub-block reads the layer input and their outputs are summed; not post-norm).
        self_attn_post_norm: Norm of the attention branch's output (``sandwich`` only, required there).
        ffn_post_norm: Norm of the feed-forward branch's output (``sandwich`` only, required there).
    """

    def __init__(
        self,
        self_attn: MultiHeadAttention,
        ffn: nn.Module,
        *,
        self_attn_norm: nn.Module,
        ffn_norm: nn.Module,
        norm_placement: NormPlacement = "pre",
        dropout: float = 0.0,
        residual: ResidualName = "sequential",
        self_attn_post_norm: nn.Module | None = None,
        ffn_post_norm: nn.Module | None = None,
    ):
        super().__init__()
        if norm_placement not in ("pre", "post", "sandwich"):
            raise ValueError(f"norm_placement={norm_placement!r} is not valid; choose 'pre', 'post' or 'sandwich'")
        if residual not in ("sequential", "parallel"):
            raise ValueError(f"residual={residual!r} is not valid; choose 'sequential' or 'parallel'")
        if residual == "parallel" and norm_placement == "post":
            raise ValueError("residual='parallel' needs norm_placement='pre' or 'sandwich' (each branch normalises "
                             "its own input)")
        self.sandwich = norm_placement == "sandwich"
        if self.sandwich != (self_attn_post_norm is not None and ffn_post_norm is not None):
            raise ValueError("norm_placement='sandwich' takes self_attn_post_norm and ffn_post_norm; other "
                             "placements take neither")
        self.pre_norm = norm_placement != "post"
        self.parallel = residual == "parallel"
        self.self_attn = self_attn
        self.self_attn_norm = self_attn_norm
        self.self_attn_post_norm = self_attn_post_norm
        self.ffn = ffn
        self.ffn_norm = ffn_norm
        self.ffn_post_norm = ffn_post_norm
        self.dropout = nn.Dropout(dropout)

    def residual(self, x: Tensor, norm: nn.Module, fn: Callable[[Tensor], Tensor],
                 post_norm: nn.Module | None = None) -> Tensor:
        if self.pre_norm:
            return x + self._dropout(self._branch(x, norm, fn, post_norm))
        return norm(x + self._dropout(fn(x)))

    @staticmethod
    def _branch(x: Tensor, norm: nn.Module, fn: Callable[[Tensor], Tensor], post_norm: nn.Module | None) -> Tensor:
        out = fn(norm(x))
        return out if post_norm is None else post_norm(out)

    def _dropout(self, x: Tensor) -> Tensor:
        # Skipping the module call outside training matters when decoding one token at a time.
        return self.dropout(x) if self.training else x

    def branches(self, x: Tensor, *branches: tuple[nn.Module, Callable[[Tensor], Tensor], nn.Module | None]) -> Tensor:
        """Apply ``(norm, fn, post_norm)`` residual branches in order, or all to ``x`` when parallel."""
        if self.parallel:
            return x + sum(self._dropout(self._branch(x, *branch)) for branch in branches)
        for branch in branches:
            x = self.residual(x, *branch)
        return x

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
        return self.branches(
            x,
            (self.self_attn_norm,
             lambda h: self.self_attn(h, mask=mask, bias=bias, is_causal=is_causal, rope=rope, cache=self_cache),
             self.self_attn_post_norm),
            (self.ffn_norm, self.ffn, self.ffn_post_norm),
        )


class DecoderLayer(EncoderLayer):
    """An ``EncoderLayer`` with cross-attention to ``context`` between self-attention and the
    feed-forward block (the encoder-decoder layer of Vaswani et al. and T5). A parallel layer
    sums all three branches of its input.

    Args:
        cross_attn: Attention with ``cross_attention=True``; the other arguments as in ``EncoderLayer``.
        cross_attn_norm: Norm of the cross-attention residual.
        cross_attn_post_norm: Norm of the cross-attention branch's output (``sandwich`` only).
    """

    def __init__(
        self,
        self_attn: MultiHeadAttention,
        cross_attn: MultiHeadAttention,
        ffn: nn.Module,
        *,
        self_attn_norm: nn.Module,
        cross_attn_norm: nn.Module,
        ffn_norm: nn.Module,
        norm_placement: NormPlacement = "pre",
        dropout: float = 0.0,
        residual: ResidualName = "sequential",
        self_attn_post_norm: nn.Module | None = None,
        cross_attn_post_norm: nn.Module | None = None,
        ffn_post_norm: nn.Module | None = None,
    ):
        super().__init__(self_attn, ffn, self_attn_norm=self_attn_norm, ffn_norm=ffn_norm,
                         norm_placement=norm_placement, dropout=dropout, residual=residual,
                         self_attn_post_norm=self_attn_post_norm, ffn_post_norm=ffn_post_norm)
        if self.sandwich != (cross_attn_post_norm is not None):
            raise ValueError("norm_placement='sandwich' takes a cross_attn_post_norm; other placements do not")
        if not cross_attn.cross_attention:
            raise ValueError("DecoderLayer: cross_attn must be built with cross_attention=True")
        self.cross_attn = cross_attn
        self.cross_attn_norm = cross_attn_norm
        self.cross_attn_post_norm = cross_attn_post_norm

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
        return self.branches(
            x,
            (self.self_attn_norm,
             lambda h: self.self_attn(h, mask=mask, bias=bias, is_causal=is_causal, rope=rope, cache=self_cache),
             self.self_attn_post_norm),
            (self.cross_attn_norm, lambda h: self.cross_attn(h, context, mask=context_mask, cache=cross_cache),
             self.cross_attn_post_norm),
            (self.ffn_norm, self.ffn, self.ffn_post_norm),
        )
