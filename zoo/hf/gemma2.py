"""``Gemma2ForCausalLM`` <-> zoo ``GPT`` with rotary positions and Gemma's norms: sandwich norms
(``norm_placement="sandwich"``: each attention and feed-forward branch normalised on the way in
and out) of RMSNorm with scale ``1 + weight`` (``norm="rmsnorm_plus_one"``), token embeddings
times sqrt(hidden_size) (``scale_embedding``), a gated tanh-GELU MLP, GQA, attention scaled by
``query_pre_attn_scalar ** -0.5``, local and global layers (``layer_types`` as ``sliding_window``
/ ``global_layer_every``), and softcapped attention scores and final logits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf import _rotary_decoder as decoder
from zoo.hf._common import (
    Architecture,
    Weight,
    attention_projections,
    hf_layer_types,
    linear,
    norm,
    refuse,
    window_layers,
)
from zoo.models import GPTConfig


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``Gemma2Config``."""
    what = "Gemma 2 config"
    if hf.attention_bias:
        raise refuse(what, "attention_bias", True, "cannot be expressed: its MLP has no biases and zoo has one "
                     "bias switch")
    if getattr(hf, "use_bidirectional_attention", None):
        raise refuse(what, "use_bidirectional_attention", True, "is not supported: a zoo GPT is causal")
    fields = decoder.zoo_fields(hf, state, what, act_field="hidden_activation")
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    scale = None if hf.query_pre_attn_scalar == head_dim else float(hf.query_pre_attn_scalar) ** -0.5
    windows = window_layers(what, getattr(hf, "layer_types", None), hf.sliding_window, hf.num_hidden_layers)
    return {**fields, **windows, "norm": "rmsnorm_plus_one", "norm_placement": "sandwich", "scale_embedding": True,
            "attention_scale": scale, "attention_softcap": hf.attn_logit_softcapping,
            "logit_softcap": hf.final_logit_softcapping}


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``Gemma2Config`` of a zoo one; refuses what Gemma 2 cannot express."""
    import transformers

    what = "zoo GPT with Gemma's norms -> Gemma2ForCausalLM"
    if not c.resolved_scale_embedding:
        raise refuse(what, "scale_embedding", c.scale_embedding, "cannot be exported: Gemma 2 scales token "
                     "embeddings by sqrt(hidden_size)")
    fields = decoder.hf_fields(c, what, switches=("sliding_window", "attention_softcap", "logit_softcap"),
                               norm="rmsnorm_plus_one", norm_placement="sandwich", any_scale=True)
    fields["hidden_activation"] = fields.pop("hidden_act")
    scalar = c.resolved_head_dim if c.attention_scale is None else c.attention_scale**-2
    if abs(scalar - round(scalar)) > 1e-6 * scalar:  # Gemma 2 scales by query_pre_attn_scalar ** -0.5, an int
        raise refuse(what, "attention_scale", c.attention_scale, "cannot be exported: Gemma 2 needs 1/scale² to be a "
                     "whole number (query_pre_attn_scalar)")
    return transformers.Gemma2Config(
        **fields, query_pre_attn_scalar=round(scalar), sliding_window=c.sliding_window, layer_types=hf_layer_types(c),
        attn_logit_softcapping=c.attention_softcap, final_logit_softcapping=c.logit_softcap, attention_bias=False,
    )


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``Gemma2ForCausalLM`` tensors: LLaMA's names and two more norms."""
    yield Weight("embed_tokens.weight", ("model.embed_tokens.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"model.layers.{i}"
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.input_layernorm", False)
        qkv = tuple(f"{hf}.self_attn.{n}_proj" for n in "qkv")
        yield from attention_projections(f"{zoo}.self_attn", qkv, False)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.self_attn.o_proj", False)
        yield from norm(f"{zoo}.self_attn_post_norm", f"{hf}.post_attention_layernorm", False)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.pre_feedforward_layernorm", False)
        yield from decoder.gated_mlp(f"{zoo}.ffn", f"{hf}.mlp")
        yield from norm(f"{zoo}.ffn_post_norm", f"{hf}.post_feedforward_layernorm", False)
    yield from norm("decoder.final_norm", "model.norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


ARCHITECTURE = Architecture(
    hf_class="Gemma2ForCausalLM", config_class="Gemma2Config", prefix="model.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=decoder.IGNORED, aliases=decoder.ALIASES,
    export_when={"position": "rotary", "norm": "rmsnorm_plus_one", "norm_placement": "sandwich"},
    scales_embedding=True,
)
