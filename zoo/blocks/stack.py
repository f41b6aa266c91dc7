"""``TransformerStack``: a stack of encoder or decoder layers plus the position scheme and norms
around it — everything a family needs between its token embedding and its output head.

Shapes: b batch, t new tokens, s all keys so far (``t`` plus the cache), e embed dim.

Where the norms sit: a pre-norm stack ends with a final norm (GPT-2, T5, LLaMA); a post-norm stack
normalises the embeddings on the way in (BERT), since each of its layers already ends in a norm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.blocks.attention import AttnImplementation, prepare_attention_mask
from zoo.blocks.layers import DecoderLayer, EncoderLayer, LayerCache, NormPlacement
from zoo.blocks.masks import padding_mask
from zoo.blocks.norms import build_norm
from zoo.blocks.positions import (
    POSITIONS,
    ALiBi,
    LearnedPositions,
    PositionName,
    RotaryEmbedding,
    SinusoidalPositions,
    T5RelativeBias,
)


class StackCache:
    """Decoding state of a whole stack: one ``LayerCache`` per layer and the positions of the keys
    seen so far (position biases need them)."""

    def __init__(self, num_layers: int) -> None:
        self.layers = [LayerCache() for _ in range(num_layers)]
        self.positions: Tensor | None = None  # (b, s), kept only when a position bias needs them
        self.length = 0

    @property
    def seq_len(self) -> int:
        return self.length

    def reserve(self, capacity: int) -> None:
        """Preallocate room for ``capacity`` positions (prompt + new tokens), so decoding writes into
        buffers instead of growing them."""
        for layer in self.layers:
            layer.reserve(capacity)

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` in every layer (beam search)."""
        for layer in self.layers:
            layer.reorder(index)
        if self.positions is not None:
            self.positions = self.positions.index_select(0, index)


class TransformerStack(nn.Module):
    """Layers, position scheme and norms shared by every family.

    Args:
        num_layers: Number of layers.
        embed_dim: Model width.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (``None`` = ``num_heads``).
        ffn_dim: Feed-forward hidden width.
        activation: Feed-forward activation name.
        norm: Norm name.
        norm_placement: ``pre`` or ``post``.
        norm_eps: Norm epsilon.
        position: One of ``none``, ``learned``, ``sinusoidal``, ``rotary``, ``alibi``, ``relative``.
        max_seq_len: Size of a learned position table (other schemes are not limited by it).
        dropout: Dropout on embeddings, residual branches and attention weights.
        bias: Biases in linear layers and LayerNorm.
        causal: Each position sees only itself and earlier ones (decoders).
        cross_attention: Layers attend to a ``context`` (the decoder of an encoder-decoder).
        embed_scale: Multiplies the input embeddings before absolute positions are added.
        head_dim: Per-head width (``None`` = ``embed_dim // num_heads``).
        attention_scale: Score scale (``None`` = ``1/sqrt(head_dim)``).
        attn_implementation: ``sdpa`` or ``eager``.
        rope_base: Rotary frequency base.
        relative_num_buckets: Buckets of the T5 relative bias.
        relative_max_distance: Offset beyond which T5 relative buckets are shared.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        ffn_dim: int | None = None,
        activation: str = "gelu",
        norm: str = "layernorm",
        norm_placement: NormPlacement = "pre",
        norm_eps: float = 1e-5,
        position: PositionName = "learned",
        max_seq_len: int = 512,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        cross_attention: bool = False,
        head_dim: int | None = None,
        attention_scale: float | None = None,
        attn_implementation: AttnImplementation = "sdpa",
        rope_base: float = 10000.0,
        relative_num_buckets: int = 32,
        relative_max_distance: int = 128,
        embed_scale: float = 1.0,
    ):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position={position!r} is not a known position scheme; choose one of {list(POSITIONS)}")
        self.position, self.max_seq_len, self.causal = position, max_seq_len, causal
        self.embed_scale = embed_scale
        self.absolute_positions = self.rotary = self.position_bias = None
        if position == "learned":
            self.absolute_positions = LearnedPositions(max_seq_len, embed_dim)
        elif position == "sinusoidal":
            self.absolute_positions = SinusoidalPositions(embed_dim)
        elif position == "rotary":
            self.rotary = RotaryEmbedding(head_dim or embed_dim // num_heads, base=rope_base)
        elif position == "alibi":
            self.position_bias = ALiBi(num_heads)
        elif position == "relative":
            self.position_bias = T5RelativeBias(
                num_heads, bidirectional=not causal,
                num_buckets=relative_num_buckets, max_distance=relative_max_distance,
            )
        layer_cls = DecoderLayer if cross_attention else EncoderLayer
        self.layers = nn.ModuleList(
            layer_cls(
                embed_dim=embed_dim, num_heads=num_heads, num_kv_heads=num_kv_heads, ffn_dim=ffn_dim,
                activation=activation, norm=norm, norm_placement=norm_placement, norm_eps=norm_eps,
                dropout=dropout, bias=bias, head_dim=head_dim, attention_scale=attention_scale,
                attn_implementation=attn_implementation,
            )
            for _ in range(num_layers)
        )
        pre_norm = norm_placement == "pre"
        self.input_norm = nn.Identity() if pre_norm else build_norm(norm, embed_dim, norm_eps, bias)
        self.final_norm = build_norm(norm, embed_dim, norm_eps, bias) if pre_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cache: StackCache | None = None,
    ) -> Tensor:
        """Run the stack over embedded tokens.

        Args:
            x: Token embeddings ``(b, t, e)``.
            attention_mask: ``(b, s)`` bool over all keys (cache included), True = real token.
            position_ids: ``(b, t)`` absolute positions of the new tokens; defaults to
                ``cache.seq_len + arange(t)``. Left-padded batches pass their own.
            context: Encoder output ``(b, s_ctx, e)`` for cross-attention.
            context_mask: ``(b, s_ctx)`` bool mask of the context.
            cache: Decoding state, updated in place.

        Returns:
            Hidden states ``(b, t, e)``.
        """
        b, t, _ = x.shape
        offset = cache.seq_len if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(offset, offset + t, device=x.device)[None]  # (1, t)
        if self.position == "learned" and offset + t > self.max_seq_len:
            raise ValueError(
                f"sequence length {offset + t} exceeds max_seq_len={self.max_seq_len} of the learned "
                "position table; raise max_seq_len or feed shorter sequences"
            )
        key_positions = position_ids
        if cache is not None:
            cache.length += t
            if self.position_bias is not None:
                if cache.positions is not None:
                    key_positions = torch.cat((cache.positions, position_ids.expand(b, -1)), dim=1)
                cache.positions = key_positions.expand(b, -1)

        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        if self.absolute_positions is not None:
            x = x + self.absolute_positions(position_ids).to(x.dtype)
        rope = self.rotary(position_ids) if self.rotary is not None else None
        bias = self.position_bias(position_ids, key_positions) if self.position_bias is not None else None
        mask = padding_mask(attention_mask) if attention_mask is not None else None
        # Causality, padding and position bias fold into one tensor here, once for all layers.
        attn_mask, is_causal = prepare_attention_mask(t, offset + t, mask, bias, self.causal, x.dtype, x.device)
        ctx_mask = padding_mask(context_mask) if context_mask is not None else None

        x = self.input_norm(x)
        if self.training:
            x = self.dropout(x)
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            if context is not None:
                x = layer(x, context, context_mask=ctx_mask, bias=attn_mask, is_causal=is_causal,
                          rope=rope, cache=layer_cache)
            else:
                x = layer(x, bias=attn_mask, is_causal=is_causal, rope=rope, cache=layer_cache)
        return self.final_norm(x)
