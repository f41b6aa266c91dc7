"""What every family model shares: weight initialisation, the hidden matrices (what μP scales and
Muon trains), parameter counting and the auxiliary (mixture-of-experts load-balancing) loss."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.feed_forward import FeedForward
from zoo.blocks.moe import MixtureOfExperts
from zoo.models.config import TransformerConfig


class ZooModel(nn.Module):
    """Base of the family models (plain ``nn.Module``s, usable without Lightning)."""

    config: TransformerConfig
    # The LM head's weight transposed, ``(e, v)``, kept only inside ``frozen_output_head``.
    _head_weight_t: Tensor | None = None

    def vocab_projection(self, hidden: Tensor) -> Tensor:
        """``lm_head(hidden)``: scores ``(..., v)`` of hidden states ``(..., e)``. Inside
        ``frozen_output_head`` (generation) the same product with the weight transposed once,
        ``hidden @ Wᵀ`` read from an ``(e, v)`` copy: on a CPU a few rows times the ``(v, e)`` weight
        as stored ran 1.3–2.2× slower than times its contiguous transpose (vocabulary 8,000 and 50,304,
        batch 1 and 8, one and two threads), and a decoding step multiplies a handful of rows."""
        weight_t = self._head_weight_t
        if weight_t is not None and not torch.is_grad_enabled():
            return hidden @ weight_t
        return self.lm_head(hidden)

    @property
    def output_head(self) -> nn.Module:
        """The module that turns final hidden states into vocabulary logits (BERT: its whole MLM
        head; GPT, T5: ``lm_head``)."""
        return self.lm_head

    @property
    def output_scale(self) -> float:
        """The factor on the final hidden states before the output head (``config.output_scale``):
        mup's 1 / width_mult, 1 under the standard parametrisation; T5 adds its own."""
        return self.config.output_scale

    def hidden_linears(self) -> list[nn.Linear]:
        """The hidden matrices, both of whose sides grow with the width: the projections of every
        attention (q, k, v, out; self and cross) and feed-forward (gate, up, down; every expert's)
        that are plain ``nn.Linear`` layers. μP scales their initialisation and AdamW rate with the
        width; Muon trains exactly these. Not here: embeddings, the output head and MoE routers
        (one side is the vocabulary or the experts), norms, biases, and layers an adapter wraps."""
        layers = []
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                names: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
            elif isinstance(module, FeedForward):
                names = ("gate_proj", "up_proj", "down_proj")
            else:
                continue
            layers += [layer for name in names if type(layer := getattr(module, name)) is nn.Linear]
        return layers

    def init_weights(self) -> None:
        """Normal(0, init_std) for linear and embedding weights, zero biases, unit norms; residual
        output projections scaled by 1/sqrt(2·layers) so the residual stream's variance does not
        grow with depth (GPT-2, Radford et al., 2019). Under mup the hidden matrices'
        std is divided by sqrt(width_mult): a variance of 1/fan-in, relative to the base width."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.num_layers)
        hidden = {id(layer) for layer in self.hidden_linears()} if self.config.is_mup else set()
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith(("out_proj", "down_proj"))
                layer_std = residual_std if is_residual else std
                if id(module) in hidden:
                    layer_std /= math.sqrt(self.config.width_mult)
                nn.init.normal_(module.weight, std=layer_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)) and module.weight is not None:
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` leaves out token and position tables (and an
        untied output head), the usual basis for comparing architectures (Kaplan et al., 2020)."""
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            for module in self.modules():
                if isinstance(module, nn.Embedding) and module.embedding_dim == self.config.embed_dim:
                    params.pop(id(module.weight), None)
            head = getattr(self, "lm_head", None)
            if head is not None:
                params.pop(id(head.weight), None)
        return sum(p.numel() for p in params.values())

    def aux_loss(self) -> Tensor | None:
        """The auxiliary loss of the last forward pass, to add to the training loss:
        ``moe_aux_loss_weight`` × the mean load-balancing loss of the mixture-of-experts layers
        (None for a model without experts)."""
        losses = [m.aux_loss for m in self.modules() if isinstance(m, MixtureOfExperts) and m.aux_loss is not None]
        if not losses:
            return None
        return self.config.moe_aux_loss_weight * torch.stack(losses).mean()


@contextlib.contextmanager
def frozen_output_head(model: nn.Module) -> Iterator[None]:
    """Within this block the weights do not change (decoding): each zoo model whose LM head is a
    plain bias-free ``nn.Linear`` on a CPU keeps its weight transposed for ``vocab_projection``
    (one copy of the head, freed on exit). GPU matmuls read either layout at the same speed."""
    models = [m for m in model.modules() if isinstance(m, ZooModel) and type(getattr(m, "lm_head", None)) is nn.Linear
              and m.lm_head.bias is None and m.lm_head.weight.device.type == "cpu"]
    for m in models:
        m._head_weight_t = m.lm_head.weight.detach().t().contiguous()
    try:
        yield
    finally:
        for m in models:
            m._head_weight_t = None
