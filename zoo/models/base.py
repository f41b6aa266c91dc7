"""What every family model shares: weight initialisation, parameter counting and the auxiliary
(mixture-of-experts load-balancing) loss."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

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

    def init_weights(self) -> None:
        """Normal(0, init_std) for linear and embedding weights, zero biases, unit norms; residual
        output projections scaled by 1/sqrt(2·layers) so the residual stream's variance does not
        grow with depth (GPT-2, Radford et al., 2019)."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.num_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith(("out_proj", "down_proj"))
                nn.init.normal_(module.weight, std=residual_std if is_residual else std)
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
