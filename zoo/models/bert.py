"""BERT-style encoder with a masked-language-model head.

What makes it this family: one bidirectional stack — every position attends to every other — trained
to recover masked tokens. BERT defaults (Devlin et al., 2019): learned positions, post-norm
LayerNorm (with a norm on the embeddings), GELU, biases, and an MLM head (dense → GELU → LayerNorm →
vocabulary projection tied to the input embedding, plus an output bias).

Shapes: b batch, t tokens, e embed dim, v vocab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.feed_forward import ACTIVATIONS, ActivationName
from zoo.blocks.layers import NormPlacement
from zoo.blocks.norms import NormName
from zoo.blocks.positions import PositionName
from zoo.blocks.softcap import softcap
from zoo.models.base import ZooModel
from zoo.models.builders import norm_block, transformer_stack
from zoo.models.config import TransformerConfig


@dataclass
class BertConfig(TransformerConfig):
    """An encoder-only model; fields as in ``TransformerConfig``, BERT defaults.

    Args:
        type_vocab_size: Segment (token type) embeddings added to the token embeddings, as BERT's
            sentence A / sentence B; 0 = none. Needed to load Hugging Face BERT weights (2 there).
    """

    activation: ActivationName = "gelu"
    norm: NormName = "layernorm"
    norm_placement: NormPlacement = "post"
    norm_eps: float = 1e-12
    position: PositionName = "learned"
    type_vocab_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type_vocab_size < 0:
            raise ValueError(
                f"BertConfig: type_vocab_size={self.type_vocab_size} must be >= 0 (0 = no segment embeddings)"
            )


class MLMHead(nn.Module):
    """Transform each hidden state, then score every vocabulary entry."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.embed_dim, config.embed_dim, bias=config.bias)
        # The head's non-linearity is the configured one without its gate (swiglu → SiLU).
        self.act = ACTIVATIONS[config.activation][0]()
        self.norm = norm_block(config)
        self.decoder = nn.Linear(config.embed_dim, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.logit_softcap = config.logit_softcap
        self.output_scale = config.output_scale  # mup's 1 / width_mult; the output bias is not scaled

    def transform(self, x: Tensor) -> Tensor:
        """dense → activation → norm: the per-position transform before the vocabulary projection."""
        return self.norm(self.act(self.dense(x)))

    def forward(self, x: Tensor) -> Tensor:
        h = self.transform(x)
        if self.output_scale != 1.0:
            h = h * self.output_scale
        if type(self.decoder) is nn.Linear:
            # One addmm with the bias inside, in the matmul's dtype: a separate `+ self.bias` on the
            # (b, t, vocab) logits was a second pass over them and, under bf16 autocast, promoted them to
            # float32 (a BERT bf16 step at 512 spent 20 % there).
            logits = F.linear(h, self.decoder.weight, self.bias)
        else:  # an adapter (peft) wraps the decoder
            logits = self.decoder(h) + self.bias
        return softcap(logits, self.logit_softcap)


class BERT(ZooModel):
    """Token embedding → bidirectional ``TransformerStack`` → MLM head."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embed_dim)
        self.embed_token_types = (
            nn.Embedding(config.type_vocab_size, config.embed_dim) if config.type_vocab_size else None
        )
        # One bidirectional stack; post-norm (BERT) puts a norm on the embeddings instead of the output.
        self.encoder = transformer_stack(config, causal=False)
        self.mlm_head = MLMHead(config)
        self.init_weights()
        if config.tie_embeddings:
            self.mlm_head.decoder.weight = self.embed_tokens.weight

    @property
    def lm_head(self) -> nn.Linear:
        return self.mlm_head.decoder

    @property
    def output_head(self) -> nn.Module:
        return self.mlm_head

    def hidden_linears(self) -> list[nn.Linear]:
        """The stack's hidden matrices and the MLM head's dense transform (width × width)."""
        dense = self.mlm_head.dense
        return [*super().hidden_linears(), *([dense] if type(dense) is nn.Linear else [])]

    def encode(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Contextual hidden states ``(b, t, e)``; ``token_type_ids`` ``(b, t)`` default to segment 0."""
        x = self.embed_tokens(input_ids)  # (b, t, e)
        if self.embed_token_types is not None:
            if token_type_ids is None:
                x = x + self.embed_token_types.weight[0]
            else:
                x = x + self.embed_token_types(token_type_ids)
        elif token_type_ids is not None:
            raise ValueError("token_type_ids given, but the model has no segment embeddings (type_vocab_size=0)")
        return self.encoder(x, attention_mask=attention_mask)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """MLM logits ``(b, t, v)``; ``attention_mask`` ``(b, t)`` is True (or 1) at real tokens."""
        return self.mlm_head(self.encode(input_ids, attention_mask, token_type_ids))
