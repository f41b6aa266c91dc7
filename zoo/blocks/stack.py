"""``TransformerStack``: a stack of encoder or decoder layers plus the position scheme and norms
around it — everything a family needs between its token embedding and its output head.

Shapes: b batch, t new tokens, s all keys so far (``t`` plus the cache), e embed dim.

Where the norms sit: a pre-norm stack ends with a final norm (GPT-2, T5, LLaMA); a post-norm stack
normalises the embeddings on the way in (BERT), since each of its layers already ends in a norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch
from torch import Tensor, nn

from zoo.blocks.attention import prepare_attention_mask
from zoo.blocks.flex import dense_document_mask, stack_flex_masks, t5_dense_bias
from zoo.blocks.layers import EncoderLayer, LayerCache
from zoo.blocks.masks import combine_masks, padding_mask
from zoo.blocks.positions import LearnedPositions, PositionKind, T5RelativeBias, check_learned_length


class StackCache:
    """Decoding state of a whole stack: one ``LayerCache`` per layer and the positions of the keys
    seen so far (position biases need them).

    Args:
        num_layers: Layers of the stack.
        windows: Each layer's sliding window (None = global); ``TransformerStack.new_cache`` fills it in.
    """

    def __init__(self, num_layers: int, windows: Sequence[int | None] | None = None) -> None:
        windows = list(windows) if windows is not None else [None] * num_layers
        if len(windows) != num_layers:
            raise ValueError(f"StackCache: {len(windows)} windows for {num_layers} layers")
        self.layers = [LayerCache(window) for window in windows]
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
    """Layers, position scheme and norms shared by every family; ``zoo.models.builders`` builds
    the parts from a config.

    Args:
        layers: ``EncoderLayer``s, or ``DecoderLayer``s for a stack that cross-attends to a context.
        positions: A position module (its ``kind`` says where it enters) or None for no positions.
        input_norm: Norm on the embeddings (post-norm stacks, BERT); None = none.
        final_norm: Norm on the output (pre-norm stacks: GPT-2's ``ln_f``, T5, LLaMA); None = none.
        dropout: Dropout on the embeddings.
        causal: Each position sees only itself and earlier ones (decoders).
        embed_scale: Multiplies the input embeddings before absolute positions are added.
    """

    def __init__(
        self,
        layers: Sequence[EncoderLayer],
        positions: nn.Module | None = None,
        *,
        input_norm: nn.Module | None = None,
        final_norm: nn.Module | None = None,
        dropout: float = 0.0,
        causal: bool = False,
        embed_scale: float = 1.0,
    ):
        super().__init__()
        self.causal, self.embed_scale = causal, embed_scale
        kind = getattr(positions, "kind", None)
        if positions is not None and kind not in get_args(PositionKind):
            raise ValueError(f"positions: {type(positions).__name__} has no kind in {get_args(PositionKind)}")
        # One attribute per place a scheme can enter; names kept stable for saved state dicts.
        self.absolute_positions = positions if kind == "absolute" else None
        self.rotary = positions if kind == "rotary" else None
        self.position_bias = positions if kind == "bias" else None
        self.layers = nn.ModuleList(layers)
        # Each layer's sliding window (None = global): one mask is prepared per distinct window.
        self.windows = [layer.self_attn.window for layer in self.layers]
        self.input_norm = input_norm if input_norm is not None else nn.Identity()
        self.final_norm = final_norm if final_norm is not None else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def new_cache(self) -> StackCache:
        """An empty decoding cache; sliding-window layers keep only what their window needs."""
        return StackCache(len(self.layers), self.windows)

    def forward(
        self,
        x: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        cache: StackCache | None = None,
        document_ids: Tensor | None = None,
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
            document_ids: ``(b, s)`` document of each key, for packed sequences: a token attends
                only within its document (``zoo.blocks.flex.document_ids`` derives them from eos).

        Returns:
            Hidden states ``(b, t, e)``.
        """
        b, t, _ = x.shape
        offset = cache.seq_len if cache is not None else 0
        explicit_positions = position_ids is not None
        if position_ids is None:
            position_ids = torch.arange(offset, offset + t, device=x.device)[None]  # (1, t)
        if isinstance(self.absolute_positions, LearnedPositions):
            check_learned_length(offset + t, self.absolute_positions.max_seq_len)
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
        # FlexAttention layers take bias and masks as functions evaluated in the kernel, where it can run.
        masks = stack_flex_masks(
            self, t, offset + t, x.device, attention_mask=attention_mask, document_ids=document_ids,
            position_ids=position_ids if explicit_positions else None,
            key_positions=key_positions if explicit_positions else None, cached=cache is not None,
        )
        if masks is None:
            if isinstance(self.position_bias, T5RelativeBias) and not explicit_positions:
                bias = t5_dense_bias(self.position_bias, t, offset + t)  # a lookup per offset, not per pair
            else:
                bias = self.position_bias(position_ids, key_positions) if self.position_bias is not None else None
            mask = padding_mask(attention_mask) if attention_mask is not None else None
            if document_ids is not None:
                mask = combine_masks(mask, dense_document_mask(document_ids, t))
            # Causality, padding, position bias and sliding window fold into one tensor here, once
            # for all the layers that share a window.
            masks = {window: prepare_attention_mask(t, offset + t, mask, bias, self.causal, x.dtype, x.device, window)
                     for window in dict.fromkeys(self.windows)}
        ctx_mask = padding_mask(context_mask) if context_mask is not None else None

        x = self.input_norm(x)
        if self.training:
            x = self.dropout(x)
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            attn_mask, is_causal = masks[self.windows[i]]
            if context is not None:
                x = layer(x, context, context_mask=ctx_mask, bias=attn_mask, is_causal=is_causal,
                          rope=rope, cache=layer_cache)
            else:
                x = layer(x, bias=attn_mask, is_causal=is_causal, rope=rope, cache=layer_cache)
        return self.final_norm(x)
