"""What every family model shares: weight initialisation, parameter counting and the auxiliary
(mixture-of-experts load-balancing) loss."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.blocks.moe import MixtureOfExperts
from zoo.models.config import TransformerConfig


class ZooModel(nn.Module):
    """Base of the family models (plain ``nn.Module``s, usable without Lightning)."""

    config: TransformerConfig

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
