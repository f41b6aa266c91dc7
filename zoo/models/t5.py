"""T5-style encoder-decoder (Raffel et al., 2020).

What makes it this family: a bidirectional encoder reads the input; a causal decoder writes the
output while cross-attending to the encoder at every layer. T5 defaults: T5 bucketed relative
position bias (bidirectional in the encoder, causal in the decoder), pre-norm RMSNorm, ReLU, no
biases, and one embedding matrix shared by encoder, decoder and (tied) head — with the decoder
output scaled by ``embed_dim ** -0.5`` before the tied head, as T5 does.

Shapes: b batch, s input len, t target len, e embed dim, v vocab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from zoo.blocks.feed_forward import ActivationName
from zoo.blocks.layers import NormPlacement
from zoo.blocks.norms import NormName
from zoo.blocks.positions import PositionName, T5RelativeBias
from zoo.blocks.softcap import softcap
from zoo.blocks.stack import StackCache
from zoo.models.base import ZooModel
from zoo.models.builders import transformer_stack
from zoo.models.config import TransformerConfig


@dataclass
class T5Config(TransformerConfig):
    """An encoder-decoder model; fields as in ``TransformerConfig``, T5 defaults. T5 initialises
    by fan-in (see ``T5.init_weights``), so ``init_std`` is not used.

    Args:
        num_decoder_layers: Decoder depth; null = ``num_layers``.
        scale_decoder_output: Multiply the decoder output by ``embed_dim ** -0.5`` before the head;
            null = when ``tie_embeddings`` (T5 v1.0 is tied and scaled, v1.1 untied and unscaled).
    """

    activation: ActivationName = "relu"
    norm: NormName = "rmsnorm"
    norm_placement: NormPlacement = "pre"
    norm_eps: float = 1e-6
    position: PositionName = "relative"
    bias: bool = False
    # T5 folds 1/sqrt(head_dim) into the query weights' initialisation instead of scaling scores.
    attention_scale: float | None = 1.0
    num_decoder_layers: int | None = None
    scale_decoder_output: bool | None = None

    @property
    def resolved_scale_decoder_output(self) -> bool:
        return self.tie_embeddings if self.scale_decoder_output is None else self.scale_decoder_output

    @property
    def output_scale(self) -> float:
        """``embed_dim ** -0.5`` with ``scale_decoder_output`` — it keeps tied logits at the scale T5
        trains with — taken at base_width under mup, times mup's output multiplier."""
        scale = self.recipe_width**-0.5 if self.resolved_scale_decoder_output else 1.0
        return scale * self.output_multiplier

    def architecture(self) -> dict[str, Any]:
        return {
            **super().architecture(),
            "num_decoder_layers": self.num_decoder_layers or self.num_layers,
            "scale_decoder_output": self.resolved_scale_decoder_output,
        }


class T5(ZooModel):
    """Shared embedding → encoder stack; shared embedding → causal decoder stack with
    cross-attention → LM head."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embed_dim)
        self.encoder = transformer_stack(config, causal=False)
        # The decoder's layers cross-attend to the encoder output; its relative bias is causal.
        self.decoder = transformer_stack(config, causal=True, cross_attention=True,
                                         num_layers=config.num_decoder_layers or config.num_layers)
        self.lm_head = nn.Linear(config.embed_dim, config.vocab_size, bias=False)
        self.init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def init_weights(self) -> None:
        """T5's initialisation (Raffel et al.'s Mesh TensorFlow code): unit-variance embeddings and
        every projection scaled by its fan-in, with attention's 1/sqrt(head_dim) folded into the
        query weights — the reason T5 attends with ``attention_scale=1.0``."""
        super().init_weights()  # norms to one, biases to zero
        c = self.config
        d, dk, h = c.embed_dim, c.resolved_head_dim, c.num_heads
        nn.init.normal_(self.embed_tokens.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=1.0)
        q_dim = h * dk
        for name, module in self.named_modules():
            if not isinstance(module, nn.Linear) or module is self.lm_head:
                continue
            weight = module.weight.data
            if name.endswith("q_proj"):
                nn.init.normal_(weight, std=(d * dk) ** -0.5)
            elif name.endswith("out_proj"):
                nn.init.normal_(weight, std=q_dim**-0.5)
            elif name.endswith("down_proj"):
                nn.init.normal_(weight, std=module.in_features**-0.5)
            else:  # k_proj, v_proj, up_proj, gate_proj
                nn.init.normal_(weight, std=d**-0.5)
        for stack in (self.encoder, self.decoder):
            if isinstance(stack.position_bias, T5RelativeBias):  # added to scores: same size at every width
                nn.init.normal_(stack.position_bias.embedding.weight, std=c.recipe_width**-0.5)

    def new_cache(self) -> StackCache:
        """An empty decoder cache (self-attention keys/values and the encoder's projected ones)."""
        return self.decoder.new_cache()

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Encoder hidden states ``(b, s, e)``."""
        return self.encoder(self.embed_tokens(input_ids), attention_mask=attention_mask)

    def decode(
        self,
        decoder_input_ids: Tensor,
        encoder_output: Tensor,
        attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        *,
        cache: StackCache | None = None,
    ) -> Tensor:
        """Logits ``(b, t, v)`` for ``decoder_input_ids`` ``(b, t)`` given the encoder's output;
        ``attention_mask`` ``(b, s)`` masks the encoder output."""
        return self.logits(self.decoder_hidden_states(
            decoder_input_ids, encoder_output, attention_mask, decoder_attention_mask, cache=cache
        ))

    def logits(self, hidden: Tensor) -> Tensor:
        """The LM head: vocabulary logits ``(..., v)`` of decoder hidden states ``(..., e)``
        (generation applies it to the last position only); ``output_scale`` first (T5's tied-head
        scale, μP's multiplier)."""
        if self.output_scale != 1.0:
            hidden = hidden * self.output_scale
        return softcap(self.vocab_projection(hidden), self.config.logit_softcap)

    def decoder_hidden_states(
        self,
        decoder_input_ids: Tensor,
        encoder_output: Tensor,
        attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        *,
        cache: StackCache | None = None,
    ) -> Tensor:
        """The decoder's final-norm output ``(b, t, e)`` (before the output scaling and head)."""
        return self.decoder(
            self.embed_tokens(decoder_input_ids), attention_mask=decoder_attention_mask,
            context=encoder_output, context_mask=attention_mask, cache=cache,
        )

    def forward(
        self,
        input_ids: Tensor,
        decoder_input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(b, t, v)``: encode ``input_ids`` ``(b, s)``, decode ``decoder_input_ids`` ``(b, t)``."""
        encoder_output = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, encoder_output, attention_mask, decoder_attention_mask)
