"""GPT-style decoder-only causal language model (and its LLaMA-style preset).

What makes it this family: one causal stack — every position attends only to itself and earlier
positions — trained to predict the next token. GPT-2 defaults: learned positions, pre-norm LayerNorm,
GELU (tanh approximation), biases, tied input/output embeddings. ``GPTConfig.llama()`` swaps in the
LLaMA recipe: RMSNorm, SwiGLU, rotary positions, grouped-query attention, no biases, untied head.

Shapes: b batch, t new tokens, v vocab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from zoo.blocks.attention import AttnImplementation
from zoo.blocks.feed_forward import ActivationName
from zoo.blocks.layers import NormPlacement
from zoo.blocks.norms import NormName
from zoo.blocks.positions import PositionName
from zoo.blocks.softcap import softcap
from zoo.blocks.stack import StackCache
from zoo.models.base import ZooModel
from zoo.models.builders import transformer_stack
from zoo.models.config import TransformerConfig


@dataclass
class GPTConfig(TransformerConfig):
    """A decoder-only model; fields as in ``TransformerConfig``, GPT-2 defaults."""

    activation: ActivationName = "gelu_tanh"
    norm: NormName = "layernorm"
    norm_placement: NormPlacement = "pre"
    position: PositionName = "learned"
    attn_implementation: AttnImplementation = "sdpa"

    @classmethod
    def llama(cls, **overrides: Any) -> GPTConfig:
        """The LLaMA-style preset (``zoo.models.config.PRESETS``): RMSNorm, SwiGLU, RoPE, GQA, no
        biases; ``overrides`` win."""
        return cls.from_dict({"preset": "llama", **overrides})


class GPT(ZooModel):
    """Token embedding → causal ``TransformerStack`` → LM head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embed_dim)
        # One causal stack; pre-norm (GPT-2) ends it in a final norm, ln_f.
        self.decoder = transformer_stack(config, causal=True)
        self.lm_head = nn.Linear(config.embed_dim, config.vocab_size, bias=False)
        self.init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def new_cache(self) -> StackCache:
        """An empty KV cache for incremental decoding."""
        return self.decoder.new_cache()

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        position_ids: Tensor | None = None,
        cache: StackCache | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """Next-token logits ``(b, t, v)`` for ``input_ids`` ``(b, t)``.

        Args:
            attention_mask: ``(b, s)`` bool or 0/1, True = real token (cache positions included).
            position_ids: ``(b, t)`` positions; needed for left-padded batches.
            cache: From ``new_cache()``; updated in place so the next call feeds only new tokens.
            document_ids: ``(b, t)`` document of each token of packed blocks: attention stays within
                a document (``zoo.blocks.flex.document_ids(input_ids, eos_id)``).
        """
        hidden = self.hidden_states(input_ids, attention_mask, position_ids=position_ids, cache=cache,
                                    document_ids=document_ids)
        return self.logits(hidden)

    def logits(self, hidden: Tensor) -> Tensor:
        """The LM head: vocabulary logits ``(..., v)`` of final hidden states ``(..., e)`` (generation
        applies it to the last position only)."""
        if self.output_scale != 1.0:  # mup's output multiplier, on the narrower side of the head
            hidden = hidden * self.output_scale
        return softcap(self.vocab_projection(hidden), self.config.logit_softcap)

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        position_ids: Tensor | None = None,
        cache: StackCache | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """The final-norm output ``(b, t, e)`` that the LM head reads; arguments as in ``forward``."""
        x = self.embed_tokens(input_ids)  # (b, t, e)
        return self.decoder(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                            document_ids=document_ids)
