"""Component builders: the one place that reads a family config and builds its blocks.

A config field reaches the block that uses it here, in one hop: ``num_kv_heads`` →
``attention_block`` → ``MultiHeadAttention(num_kv_heads=...)``. Blocks take plain values or
ready sub-modules; the family files (``bert.py``, ``gpt.py``, ``t5.py``) compose what these return.
Per-layer choices (which layers use the sliding window) are made here too, from the layer index.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.feed_forward import FeedForward
from zoo.blocks.layers import DecoderLayer, EncoderLayer
from zoo.blocks.moe import MixtureOfExperts
from zoo.blocks.norms import build_norm
from zoo.blocks.positions import ALiBi, LearnedPositions, RotaryEmbedding, SinusoidalPositions, T5RelativeBias
from zoo.blocks.stack import TransformerStack
from zoo.models.config import TransformerConfig

#: Position scheme name → builder ``(config, causal) -> module or None``; keys are ``PositionName``'s.
POSITION_BUILDERS: dict[str, Callable[[TransformerConfig, bool], nn.Module | None]] = {
    "none": lambda c, causal: None,
    "learned": lambda c, causal: LearnedPositions(c.max_seq_len, c.embed_dim),
    "sinusoidal": lambda c, causal: SinusoidalPositions(c.embed_dim),
    "rotary": lambda c, causal: RotaryEmbedding(c.rotary_dims, base=c.rope_base),
    "alibi": lambda c, causal: ALiBi(c.num_heads),
    # Bidirectional buckets in an encoder; a causal decoder only ever looks back.
    "relative": lambda c, causal: T5RelativeBias(
        c.num_heads, bidirectional=not causal, num_buckets=c.relative_num_buckets,
        max_distance=c.relative_max_distance,
    ),
}


def position_scheme(c: TransformerConfig, *, causal: bool) -> nn.Module | None:
    """The position module ``c.position`` names (None for ``none``)."""
    if c.position not in POSITION_BUILDERS:
        raise ValueError(f"position={c.position!r} is not a known position scheme; choose one of "
                         f"{list(POSITION_BUILDERS)}")
    return POSITION_BUILDERS[c.position](c, causal)


def attention_block(c: TransformerConfig, *, cross_attention: bool = False, index: int = 0) -> MultiHeadAttention:
    """Self- or cross-attention of layer ``index`` with the config's heads, head width, scale,
    kernel, QK-norm, softcap and (self-attention) that layer's sliding window."""
    qk_norm = c.qk_norm != "none"
    return MultiHeadAttention(
        c.embed_dim, c.num_heads, num_kv_heads=c.resolved_num_kv_heads, head_dim=c.resolved_head_dim,
        dropout=c.dropout, bias=c.bias, cross_attention=cross_attention, scale=c.resolved_attention_scale,
        attn_implementation=c.attn_implementation,
        window=None if cross_attention else c.layer_window(index), softcap=c.attention_softcap,
        q_norm=build_norm(c.qk_norm, c.resolved_head_dim, c.norm_eps, c.bias) if qk_norm else None,
        k_norm=build_norm(c.qk_norm, c.resolved_head_dim, c.norm_eps, c.bias) if qk_norm else None,
    )


def feed_forward_block(c: TransformerConfig) -> FeedForward | MixtureOfExperts:
    """The dense feed-forward, or a mixture of ``num_experts`` of them behind a top-k router."""
    if c.num_experts is None:
        return FeedForward(c.embed_dim, c.resolved_ffn_dim, c.activation, bias=c.bias)
    experts = [FeedForward(c.embed_dim, c.resolved_ffn_dim, c.activation, bias=c.bias) for _ in range(c.num_experts)]
    # The router reads the width out into a fixed number of experts: an output layer to mup.
    return MixtureOfExperts(experts, c.embed_dim, top_k=c.experts_per_token, router_multiplier=c.output_multiplier)


def norm_block(c: TransformerConfig) -> nn.Module:
    return build_norm(c.norm, c.embed_dim, c.norm_eps, c.bias)


def transformer_layer(c: TransformerConfig, *, cross_attention: bool = False, index: int = 0) -> EncoderLayer:
    """Layer ``index`` of a stack: an ``EncoderLayer``, or a ``DecoderLayer`` that also attends to
    a context."""
    common = dict(norm_placement=c.norm_placement, dropout=c.dropout, residual=c.residual)
    sandwich = c.norm_placement == "sandwich"  # each branch's output is normed too (Gemma 2)
    if sandwich:
        common.update(self_attn_post_norm=norm_block(c), ffn_post_norm=norm_block(c))
    if cross_attention:
        return DecoderLayer(
            attention_block(c, index=index), attention_block(c, cross_attention=True), feed_forward_block(c),
            self_attn_norm=norm_block(c), cross_attn_norm=norm_block(c), ffn_norm=norm_block(c),
            cross_attn_post_norm=norm_block(c) if sandwich else None, **common,
        )
    return EncoderLayer(attention_block(c, index=index), feed_forward_block(c), self_attn_norm=norm_block(c),
                        ffn_norm=norm_block(c), **common)


def transformer_stack(
    c: TransformerConfig, *, causal: bool, cross_attention: bool = False, num_layers: int | None = None
) -> TransformerStack:
    """``num_layers`` (default ``c.num_layers``) layers with the config's position scheme. Norms
    follow the placement: a pre-norm (or sandwich) stack ends in a final norm (GPT-2's ``ln_f``, T5,
    LLaMA, Gemma 2); a post-norm stack, whose layers already end in one, normalises the embeddings
    instead (BERT)."""
    pre_norm = c.norm_placement != "post"
    return TransformerStack(
        [transformer_layer(c, cross_attention=cross_attention, index=i) for i in range(num_layers or c.num_layers)],
        position_scheme(c, causal=causal),
        input_norm=None if pre_norm else norm_block(c),
        final_norm=norm_block(c) if pre_norm else None,
        dropout=c.dropout, causal=causal, embed_scale=c.embed_scale,
    )
