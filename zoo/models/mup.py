"""μP, the maximal-update parametrisation (Yang et al., 2022, "Tensor Programs V"), in every family,
and its equivalent standard model.

With ``parametrization: mup`` and ``base_width`` in a family config, and m = embed_dim / base_width:

- hidden matrices (``ZooModel.hidden_linears``: attention q/k/v/out, self and cross; feed-forward
  gate/up/down, every expert's; BERT's MLM-head dense): initial std / sqrt(m); AdamW rate lr / m,
  Muon rate unchanged (its own shape factor already sizes the step; ``zoo.tasks.optimizers``).
- output layers (LM head, MLM decoder, classifier, MoE router): logits × 1/m; initialisation and
  rate (AdamW) unchanged.
- embeddings (token, position, segment, T5 relative bias), norms, biases: unchanged.
- attention scores: × sqrt(base head_dim / head_dim), so they scale as 1/head_dim, not 1/sqrt(head_dim).

Width-dependent constants of a recipe are taken at ``base_width``: the sqrt(embed_dim) embedding
scale (``scale_embedding``), T5's embed_dim ** -0.5 decoder-output scale and its relative-bias init
(T5 already initialises every projection by fan-in, which is μP's hidden initialisation). A tied
embedding is one matrix under the embedding's rules, with the output multiplier on the logits (the
``mup`` package's ``MuSharedReadout``). At embed_dim = base_width every multiplier is 1 and the μP
model is the standard one. The rates live in ``zoo.tasks.optimizers``; the rest in the models.

``standard_equivalent(model)`` folds the multipliers into the weights: a standard-parametrisation
model with the same logits, which ``zoo.hf.to_hf`` (``zoo convert``) exports.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.moe import MixtureOfExperts
from zoo.blocks.norms import RMSNormPlusOne
from zoo.models.base import ZooModel


def _scale_norm(state: dict[str, torch.Tensor], prefix: str, norm: nn.Module, factor: float) -> None:
    """Fold ``factor`` into a norm's output: its scale (and shift) times ``factor``."""
    weight = state[f"{prefix}.weight"]
    if isinstance(norm, RMSNormPlusOne):  # scale is 1 + weight
        state[f"{prefix}.weight"] = (1.0 + weight) * factor - 1.0
    else:
        state[f"{prefix}.weight"] = weight * factor
    if f"{prefix}.bias" in state:
        state[f"{prefix}.bias"] = state[f"{prefix}.bias"] * factor


@torch.no_grad()
def standard_equivalent(model: ZooModel) -> ZooModel:
    """A standard-parametrisation model computing what the μP ``model`` computes (the model itself
    when it is standard already, or no zoo model), for tools that know only the standard form
    (Hugging Face).

    The folds: the attention-score factor into the query projections (into the query norm's scale
    when there is QK-norm, which would undo a factor before it); the output multiplier (and T5's
    base-width output scale) into the head — a tied head is untied for it, since the embedding
    keeps its own values; the embedding scale into the token (and segment) embeddings; the router
    multiplier into each MoE router. Classification heads are the task's and are not included.
    """
    if not isinstance(model, ZooModel) or not model.config.is_mup:  # to_hf refuses what is no zoo model
        return model
    config = model.config
    values = {**config.to_dict(), "parametrization": "standard", "base_width": None}
    if hasattr(config, "resolved_scale_decoder_output"):  # T5: keep the scaling when untying below
        values["scale_decoder_output"] = config.resolved_scale_decoder_output
    standard_config = type(config).from_dict(values)
    head_factor = config.output_scale / standard_config.output_scale
    embed_factor = config.embed_scale / standard_config.embed_scale
    if config.tie_embeddings and (head_factor != 1.0 or embed_factor != 1.0):
        values["tie_embeddings"] = False
        standard_config = type(config).from_dict(values)

    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    head_name = next(f"{name}.weight" for name, module in model.named_modules() if module is model.lm_head)
    head = state[head_name] * head_factor  # read before the embedding is scaled: a tied head shares it
    for name in ("embed_tokens.weight", "embed_token_types.weight"):
        if name in state:
            state[name] = state[name] * embed_factor
    state[head_name] = head

    standard_scale = standard_config.resolved_attention_scale
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            standard = standard_scale if standard_scale is not None else module.head_dim**-0.5
            factor = module.scale / standard
            if factor == 1.0:
                continue
            if module.q_norm is not None:
                _scale_norm(state, f"{name}.q_norm", module.q_norm, factor)
            else:
                state[f"{name}.q_proj.weight"] = state[f"{name}.q_proj.weight"] * factor
                if f"{name}.q_proj.bias" in state:
                    state[f"{name}.q_proj.bias"] = state[f"{name}.q_proj.bias"] * factor
        elif isinstance(module, MixtureOfExperts) and module.router_multiplier != 1.0:
            state[f"{name}.router.weight"] = state[f"{name}.router.weight"] * module.router_multiplier

    standard_model = type(model)(standard_config)
    standard_model.load_state_dict(state)
    reference = next(model.parameters())
    return standard_model.to(device=reference.device, dtype=reference.dtype).train(model.training)

