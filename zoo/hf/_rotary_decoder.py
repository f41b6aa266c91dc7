"""What the LLaMA-like decoders (Mistral, Qwen3, Mixtral, Gemma 2) share with LLaMA: RMSNorm, a
gated MLP, unscaled RoPE, grouped-query attention and the ``model.layers.*`` tensor names. Each
architecture module adds its own switches (sliding window, QK-norm, experts, Gemma's norms) on top."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf._common import (
    GATED_ACTIVATIONS,
    Weight,
    activation,
    attention_projections,
    check_common,
    check_heads,
    head_tied,
    linear,
    norm,
    refuse_switches,
    require,
    special_ids,
)
from zoo.hf.llama import rope_theta
from zoo.models import GPTConfig

# zoo gated activation -> HF hidden_act
HF_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu", "geglu_tanh": "gelu_pytorch_tanh"}


def zoo_fields(hf: Any, state: Mapping[str, Tensor], what: str, bias: bool = False,
               act_field: str = "hidden_act") -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a LLaMA-like transformers config (no biases unless ``bias``;
    the activation named by ``act_field``)."""
    check_common(what, hf)
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv_heads = hf.num_key_value_heads or hf.num_attention_heads
    tied = head_tied(state, "lm_head.weight", "model.embed_tokens.weight", hf.tie_word_embeddings, what)
    return dict(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
        num_kv_heads=None if kv_heads == hf.num_attention_heads else kv_heads,
        head_dim=None if head_dim * hf.num_attention_heads == hf.hidden_size else head_dim,
        ffn_dim=hf.intermediate_size, activation=activation(what, act_field, getattr(hf, act_field), GATED_ACTIVATIONS),
        norm="rmsnorm", norm_placement="pre", norm_eps=hf.rms_norm_eps, position="rotary",
        dropout=float(getattr(hf, "attention_dropout", 0.0) or 0.0), bias=bias, tie_embeddings=tied,
        rope_base=rope_theta(hf, what), init_std=hf.initializer_range, **special_ids(hf),
    )


def hf_fields(c: GPTConfig, what: str, switches: tuple[str, ...], norm: str = "rmsnorm",
              norm_placement: str = "pre", any_scale: bool = False) -> dict[str, Any]:
    """Keyword arguments every LLaMA-like transformers config takes, after refusing what the class
    cannot express: ``switches`` are the modern switches (``SWITCHES_OFF``) it has, ``norm`` and
    ``norm_placement`` its own, ``any_scale`` whether it takes an attention scale (Gemma 2)."""
    require(what, c, "norm", (norm,), f"it uses {norm}")
    require(what, c, "norm_placement", (norm_placement,), f"its norm placement is {norm_placement}")
    if not any_scale:
        require(what, c, "attention_scale", (None,), "it scales scores by 1/sqrt(head_dim)")
    require(what, c, "activation", tuple(HF_ACTIVATIONS), "it has a gated MLP")
    require(what, c, "bias", (False,), "it has no biases")
    check_heads(what, c, gqa=True)
    refuse_switches(what, c, switches)
    return dict(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.resolved_ffn_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
        num_key_value_heads=c.resolved_num_kv_heads, head_dim=c.resolved_head_dim,
        hidden_act=HF_ACTIVATIONS[c.activation], max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps,
        rope_theta=c.rope_base, attention_dropout=c.dropout, initializer_range=c.init_std,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
        tie_word_embeddings=c.tie_embeddings,
    )


def gated_mlp(zoo: str, hf: str) -> Iterator[Weight]:
    """A zoo gated ``FeedForward`` <-> HF ``gate_proj`` / ``up_proj`` / ``down_proj`` without biases."""
    for name in ("gate_proj", "up_proj", "down_proj"):
        yield from linear(f"{zoo}.{name}", f"{hf}.{name}", False)


def weights(c: GPTConfig, ffn: Callable[[int], Iterator[Weight]], qk_norm: bool = False) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``model.*`` / ``lm_head`` tensors; q, k and v map one to one.

    Args:
        ffn: Layer index -> the entries of that layer's feed-forward (or experts).
        qk_norm: The attention has ``q_norm`` / ``k_norm`` (Qwen3).
    """
    yield Weight("embed_tokens.weight", ("model.embed_tokens.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"model.layers.{i}"
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.input_layernorm", False)
        qkv = tuple(f"{hf}.self_attn.{n}_proj" for n in "qkv")
        yield from attention_projections(f"{zoo}.self_attn", qkv, False)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.self_attn.o_proj", False)
        if qk_norm:
            yield from norm(f"{zoo}.self_attn.q_norm", f"{hf}.self_attn.q_norm", False)
            yield from norm(f"{zoo}.self_attn.k_norm", f"{hf}.self_attn.k_norm", False)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.post_attention_layernorm", False)
        yield from ffn(i)
    yield from norm("decoder.final_norm", "model.norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


IGNORED = (r"\.rotary_emb\.inv_freq$",)  # a buffer recomputed from rope_theta
ALIASES = (("lm_head.weight", "model.embed_tokens.weight"),)


def is_set(value: Any) -> bool:
    """set (not null)"""
    return value is not None
