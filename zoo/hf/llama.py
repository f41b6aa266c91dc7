"""``LlamaForCausalLM`` <-> zoo ``GPT`` with rotary positions: pre-norm RMSNorm, a gated MLP
(SwiGLU by default), grouped-query attention and unscaled RoPE."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf._common import (
    GATED_ACTIVATIONS,
    Architecture,
    Weight,
    activation,
    attention_projections,
    check_common,
    check_heads,
    head_tied,
    linear,
    norm,
    refuse,
    refuse_switches,
    require,
    special_ids,
)
from zoo.models import GPTConfig


def rope_theta(hf: Any, what: str) -> float:
    """The base of default RoPE; scaled variants (linear, dynamic, yarn, llama3, ...) are refused."""
    params = dict(getattr(hf, "rope_parameters", None) or {})  # transformers 5
    scaling = getattr(hf, "rope_scaling", None)  # transformers 4
    if scaling:
        params = {**params, **scaling}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise refuse(what, "rope_scaling", params, "is not supported; zoo rotary positions are unscaled")
    return float(params.get("rope_theta", getattr(hf, "rope_theta", 10000.0)))


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``LlamaConfig``."""
    what = "LLaMA config"
    check_common(what, hf)
    if hf.attention_bias != hf.mlp_bias:
        raise refuse(what, "mlp_bias", hf.mlp_bias,
                     f"differs from attention_bias={hf.attention_bias}; zoo has one bias switch")
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv_heads = hf.num_key_value_heads or hf.num_attention_heads
    tied = head_tied(state, "lm_head.weight", "model.embed_tokens.weight", hf.tie_word_embeddings, what)
    return dict(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
        num_kv_heads=None if kv_heads == hf.num_attention_heads else kv_heads,
        head_dim=None if head_dim * hf.num_attention_heads == hf.hidden_size else head_dim,
        ffn_dim=hf.intermediate_size, activation=activation(what, "hidden_act", hf.hidden_act, GATED_ACTIVATIONS),
        norm="rmsnorm", norm_placement="pre", norm_eps=hf.rms_norm_eps, position="rotary",
        dropout=float(hf.attention_dropout or 0.0), bias=bool(hf.attention_bias), tie_embeddings=tied,
        rope_base=rope_theta(hf, what), init_std=hf.initializer_range, **special_ids(hf),
    )


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``LlamaConfig`` of a zoo one; refuses what LLaMA cannot express."""
    import transformers

    what = "zoo GPT with rotary positions -> LlamaForCausalLM"
    require(what, c, "norm", ("rmsnorm",), "LLaMA uses RMSNorm")
    require(what, c, "norm_placement", ("pre",), "LLaMA is pre-norm")
    require(what, c, "attention_scale", (None,), "LLaMA scales scores by 1/sqrt(head_dim)")
    acts = {"swiglu": "silu", "geglu": "gelu", "geglu_tanh": "gelu_pytorch_tanh"}
    require(what, c, "activation", tuple(acts), "LLaMA has a gated MLP")
    check_heads(what, c, gqa=True)
    refuse_switches(what, c)
    return transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.resolved_ffn_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
        num_key_value_heads=c.num_kv_heads or c.num_heads, head_dim=c.resolved_head_dim,
        hidden_act=acts[c.activation], max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps,
        rope_theta=c.rope_base, attention_bias=c.bias, mlp_bias=c.bias, attention_dropout=c.dropout,
        initializer_range=c.init_std, pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id, tie_word_embeddings=c.tie_embeddings,
    )


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``LlamaForCausalLM`` tensors; q, k and v map one to one."""
    yield Weight("embed_tokens.weight", ("model.embed_tokens.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"model.layers.{i}"
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.input_layernorm", False)
        qkv = tuple(f"{hf}.self_attn.{n}_proj" for n in "qkv")
        yield from attention_projections(f"{zoo}.self_attn", qkv, c.bias)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.self_attn.o_proj", c.bias)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.post_attention_layernorm", False)
        for name in ("gate_proj", "up_proj", "down_proj"):
            yield from linear(f"{zoo}.ffn.{name}", f"{hf}.mlp.{name}", c.bias)
    yield from norm("decoder.final_norm", "model.norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


ARCHITECTURE = Architecture(
    hf_class="LlamaForCausalLM", config_class="LlamaConfig", prefix="model.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=(r"\.rotary_emb\.inv_freq$",),  # a buffer recomputed from rope_theta
    aliases=(("lm_head.weight", "model.embed_tokens.weight"),),
    export_when={"position": "rotary"},
)
