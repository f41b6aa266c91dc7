"""Hugging Face interop: BERT, GPT-2, T5 and LLaMA weights in and out of zoo models.

    from_hf(model_or_path)            transformers model or save_pretrained directory -> zoo model
    to_hf(zoo_model)                  zoo model -> transformers model with the same weights
    save_pretrained(zoo_model, dir)   zoo model -> directory that AutoModelFor*.from_pretrained loads

Each family here is only two config translations and a table of weight names: the computation is
the zoo's own blocks, so equal logits prove the blocks against an independent implementation.

| Hugging Face class           | zoo model | zoo config                                            |
|------------------------------|-----------|-------------------------------------------------------|
| `BertForMaskedLM`            | `BERT`    | BERT defaults, `type_vocab_size` segment embeddings   |
| `GPT2LMHeadModel`            | `GPT`     | learned positions, pre-norm LayerNorm, biases         |
| `LlamaForCausalLM`           | `GPT`     | rotary, RMSNorm, gated FFN (swiglu), GQA              |
| `T5ForConditionalGeneration` | `T5`      | relative bias, RMSNorm, `attention_scale=1.0`         |

Anything one side can express and the other cannot — an HF option the blocks lack, a zoo switch no
HF class has, a missing, extra or mis-shaped tensor — is refused with a one-line ``ValueError``
naming it, never turned into a silently different model. ``transformers`` is imported lazily, so
``import zoo.hf`` works without it.

Shapes in the weight tables: e model width, h·d query width, k·d key/value width, f ffn width, v vocab.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig

__all__ = ["from_hf", "to_hf", "save_pretrained", "SUPPORTED_CLASSES"]

# Hugging Face activation names (transformers' ACT2FN) -> zoo activations, plain and gated.
PLAIN_ACTIVATIONS = {
    "relu": "relu", "gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
}
GATED_ACTIVATIONS = {
    "silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "gelu_python": "geglu",
    "gelu_new": "geglu_tanh", "gelu_pytorch_tanh": "geglu_tanh",
}


# --------------------------------------------------------------------------------------------------
# Weight tables


@dataclass(frozen=True)
class Weight:
    """One zoo tensor and the Hugging Face tensors it is made of, stacked along dim 0 (fused QKV).

    Args:
        zoo: Zoo state-dict name; None for an HF tensor the zoo lacks that must be all zeros.
        hf: HF state-dict names, in stacking order.
        rows: Rows each HF tensor contributes; None = one tensor, all rows.
        conv1d: GPT-2's ``Conv1D`` stores a linear weight transposed, ``(in, out)``.
        copies: HF names that receive the same tensor on export and are not read on import.
        shape: The shape of a zero tensor (``zoo`` None).
    """

    zoo: str | None
    hf: tuple[str, ...]
    rows: tuple[int, ...] | None = None
    conv1d: bool = False
    copies: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None


def _linear(zoo: str, hf: str | tuple[str, ...], bias: bool, rows: tuple[int, ...] | None = None,
            conv1d: bool = False) -> Iterator[Weight]:
    names = (hf,) if isinstance(hf, str) else hf
    yield Weight(f"{zoo}.weight", tuple(f"{n}.weight" for n in names), rows, conv1d)
    if bias:
        yield Weight(f"{zoo}.bias", tuple(f"{n}.bias" for n in names), rows, conv1d)


def _norm(zoo: str, hf: str, bias: bool) -> Iterator[Weight]:
    yield Weight(f"{zoo}.weight", (f"{hf}.weight",))
    if bias:
        yield Weight(f"{zoo}.bias", (f"{hf}.bias",))


def _qkv_rows(c: TransformerConfig) -> tuple[int, int, int]:
    q, kv = c.num_heads * c.resolved_head_dim, (c.num_kv_heads or c.num_heads) * c.resolved_head_dim
    return q, kv, kv


def _bert_weights(c: BertConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    e = "bert.embeddings"
    yield Weight("embed_tokens.weight", (f"{e}.word_embeddings.weight",))
    yield Weight("encoder.absolute_positions.embedding.weight", (f"{e}.position_embeddings.weight",))
    if c.type_vocab_size:
        yield Weight("embed_token_types.weight", (f"{e}.token_type_embeddings.weight",))
    else:  # HF BERT always has segment embeddings: one all-zero row adds nothing
        yield Weight(None, (f"{e}.token_type_embeddings.weight",), shape=(1, c.embed_dim))
    yield from _norm("encoder.input_norm", f"{e}.LayerNorm", True)
    for i in range(c.num_layers):
        zoo, hf = f"encoder.layers.{i}", f"bert.encoder.layer.{i}"
        qkv = tuple(f"{hf}.attention.self.{n}" for n in ("query", "key", "value"))
        yield from _linear(f"{zoo}.self_attn.qkv_proj", qkv, True, _qkv_rows(c))
        yield from _linear(f"{zoo}.self_attn.out_proj", f"{hf}.attention.output.dense", True)
        yield from _norm(f"{zoo}.self_attn_norm", f"{hf}.attention.output.LayerNorm", True)
        yield from _linear(f"{zoo}.ffn.up_proj", f"{hf}.intermediate.dense", True)
        yield from _linear(f"{zoo}.ffn.down_proj", f"{hf}.output.dense", True)
        yield from _norm(f"{zoo}.ffn_norm", f"{hf}.output.LayerNorm", True)
    p = "cls.predictions"
    yield from _linear("mlm_head.dense", f"{p}.transform.dense", True)
    yield from _norm("mlm_head.norm", f"{p}.transform.LayerNorm", True)
    if not c.tie_embeddings:
        yield Weight("mlm_head.decoder.weight", (f"{p}.decoder.weight",))
    # The output bias is `decoder.bias` (an alias of `predictions.bias` when tied); transformers 5
    # leaves `predictions.bias` unused in an untied head. Files of a tied head store only `predictions.bias`.
    if state is None or f"{p}.decoder.bias" in state:
        yield Weight("mlm_head.bias", (f"{p}.decoder.bias",), copies=(f"{p}.bias",))
    else:
        yield Weight("mlm_head.bias", (f"{p}.bias",), copies=(f"{p}.decoder.bias",))


def _gpt2_weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    yield Weight("embed_tokens.weight", ("transformer.wte.weight",))
    yield Weight("decoder.absolute_positions.embedding.weight", ("transformer.wpe.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"transformer.h.{i}"
        yield from _norm(f"{zoo}.self_attn_norm", f"{hf}.ln_1", True)
        yield from _linear(f"{zoo}.self_attn.qkv_proj", f"{hf}.attn.c_attn", True, conv1d=True)
        yield from _linear(f"{zoo}.self_attn.out_proj", f"{hf}.attn.c_proj", True, conv1d=True)
        yield from _norm(f"{zoo}.ffn_norm", f"{hf}.ln_2", True)
        yield from _linear(f"{zoo}.ffn.up_proj", f"{hf}.mlp.c_fc", True, conv1d=True)
        yield from _linear(f"{zoo}.ffn.down_proj", f"{hf}.mlp.c_proj", True, conv1d=True)
    yield from _norm("decoder.final_norm", "transformer.ln_f", True)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


def _llama_weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    yield Weight("embed_tokens.weight", ("model.embed_tokens.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"model.layers.{i}"
        yield from _norm(f"{zoo}.self_attn_norm", f"{hf}.input_layernorm", False)
        qkv = tuple(f"{hf}.self_attn.{n}_proj" for n in "qkv")
        yield from _linear(f"{zoo}.self_attn.qkv_proj", qkv, c.bias, _qkv_rows(c))
        yield from _linear(f"{zoo}.self_attn.out_proj", f"{hf}.self_attn.o_proj", c.bias)
        yield from _norm(f"{zoo}.ffn_norm", f"{hf}.post_attention_layernorm", False)
        for name in ("gate_proj", "up_proj", "down_proj"):
            yield from _linear(f"{zoo}.ffn.{name}", f"{hf}.mlp.{name}", c.bias)
    yield from _norm("decoder.final_norm", "model.norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


def _t5_weights(c: T5Config, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    yield Weight("embed_tokens.weight", ("shared.weight",))
    gated = c.activation in ("swiglu", "geglu", "geglu_tanh")
    q, kv, _ = _qkv_rows(c)
    for stack, num_layers in (("encoder", c.num_layers), ("decoder", c.num_decoder_layers or c.num_layers)):
        yield Weight(f"{stack}.position_bias.embedding.weight",
                     (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",))
        for i in range(num_layers):
            zoo, hf = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            attn = f"{hf}.0.SelfAttention"
            yield from _linear(f"{zoo}.self_attn.qkv_proj", (f"{attn}.q", f"{attn}.k", f"{attn}.v"), False,
                               _qkv_rows(c))
            yield from _linear(f"{zoo}.self_attn.out_proj", f"{attn}.o", False)
            yield from _norm(f"{zoo}.self_attn_norm", f"{hf}.0.layer_norm", False)
            ffn = 1
            if stack == "decoder":
                cross, ffn = f"{hf}.1.EncDecAttention", 2
                yield from _linear(f"{zoo}.cross_attn.q_proj", f"{cross}.q", False)
                yield from _linear(f"{zoo}.cross_attn.kv_proj", (f"{cross}.k", f"{cross}.v"), False, (kv, kv))
                yield from _linear(f"{zoo}.cross_attn.out_proj", f"{cross}.o", False)
                yield from _norm(f"{zoo}.cross_attn_norm", f"{hf}.1.layer_norm", False)
            dense = f"{hf}.{ffn}.DenseReluDense"
            if gated:  # act(wi_0 x) * wi_1 x
                yield from _linear(f"{zoo}.ffn.gate_proj", f"{dense}.wi_0", False)
                yield from _linear(f"{zoo}.ffn.up_proj", f"{dense}.wi_1", False)
            else:
                yield from _linear(f"{zoo}.ffn.up_proj", f"{dense}.wi", False)
            yield from _linear(f"{zoo}.ffn.down_proj", f"{dense}.wo", False)
            yield from _norm(f"{zoo}.ffn_norm", f"{hf}.{ffn}.layer_norm", False)
        yield from _norm(f"{stack}.final_norm", f"{stack}.final_layer_norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


# --------------------------------------------------------------------------------------------------
# Config translations: Hugging Face -> zoo


def _refuse(what: str, field: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{what}: {field}={value!r} {why}")


def _special_ids(hf: Any) -> dict[str, int]:
    """pad/bos/eos ids that HF sets (it may leave them None, or give a list of eos ids)."""
    ids = {}
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(hf, name, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            ids[name] = int(value)
    return ids


def _activation(what: str, field: str, name: Any, table: Mapping[str, str]) -> str:
    if not isinstance(name, str) or name not in table:
        raise _refuse(what, field, name, f"is not supported by the zoo blocks; supported: {sorted(table)}")
    return table[name]


def _check_common(what: str, hf: Any) -> None:
    if getattr(hf, "pruned_heads", None):
        raise _refuse(what, "pruned_heads", hf.pruned_heads, "cannot be expressed: zoo layers keep every head")
    if getattr(hf, "add_cross_attention", False):
        raise _refuse(what, "add_cross_attention", True, "cannot be expressed by a zoo decoder-only/encoder model")


def _head_tied(state: Mapping[str, Tensor], head: str, embedding: str, config_tied: bool, what: str) -> bool:
    """HF ties the output head to the embedding when its config says so, except (transformers 5)
    when a checkpoint holds both tensors with different values."""
    if head not in state:
        if config_tied:
            return True
        raise ValueError(f"{what}: missing tensor {head} (the config unties the output head)")
    other = state.get(embedding)
    return bool(config_tied and other is not None and other.shape == state[head].shape
                and torch.equal(other, state[head]))


def _bert_config(hf: Any, state: Mapping[str, Tensor]) -> BertConfig:
    what = "BERT config"
    _check_common(what, hf)
    if getattr(hf, "is_decoder", False):
        raise _refuse(what, "is_decoder", True, "cannot be expressed: zoo BERT is a bidirectional encoder")
    position = getattr(hf, "position_embedding_type", "absolute")
    if position != "absolute":
        raise _refuse(what, "position_embedding_type", position, "is not supported; only 'absolute' is")
    types = hf.type_vocab_size
    type_table = state.get("bert.embeddings.token_type_embeddings.weight")
    if types == 1 and type_table is not None and not type_table.any():
        types = 0  # the single all-zero row of an exported zoo BERT without segments
    tied = _head_tied(state, "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight",
                      getattr(hf, "tie_word_embeddings", True), what)
    return BertConfig(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads, ffn_dim=hf.intermediate_size,
        activation=_activation(what, "hidden_act", hf.hidden_act, PLAIN_ACTIVATIONS), norm_eps=hf.layer_norm_eps,
        dropout=float(hf.hidden_dropout_prob), bias=True, tie_embeddings=tied, init_std=hf.initializer_range,
        type_vocab_size=types, **_special_ids(hf),
    )


def _gpt2_config(hf: Any, state: Mapping[str, Tensor]) -> GPTConfig:
    what = "GPT-2 config"
    _check_common(what, hf)
    if hf.scale_attn_by_inverse_layer_idx:
        raise _refuse(what, "scale_attn_by_inverse_layer_idx", True,
                      "cannot be expressed: zoo layers share one attention scale")
    # reorder_and_upcast_attn changes only the order of fp operations, not the function.
    tied = _head_tied(state, "lm_head.weight", "transformer.wte.weight", hf.tie_word_embeddings, what)
    return GPTConfig(
        vocab_size=hf.vocab_size, max_seq_len=hf.n_positions, embed_dim=hf.n_embd, num_layers=hf.n_layer,
        num_heads=hf.n_head, ffn_dim=hf.n_inner or 4 * hf.n_embd,
        activation=_activation(what, "activation_function", hf.activation_function, PLAIN_ACTIVATIONS),
        norm="layernorm", norm_placement="pre", norm_eps=hf.layer_norm_epsilon, position="learned",
        dropout=float(hf.resid_pdrop), bias=True, tie_embeddings=tied,
        attention_scale=None if hf.scale_attn_weights else 1.0, init_std=hf.initializer_range, **_special_ids(hf),
    )


def _rope_theta(hf: Any, what: str) -> float:
    """The base of default RoPE; scaled variants (linear, dynamic, yarn, llama3, ...) are refused."""
    params = dict(getattr(hf, "rope_parameters", None) or {})  # transformers 5
    scaling = getattr(hf, "rope_scaling", None)  # transformers 4
    if scaling:
        params = {**params, **scaling}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise _refuse(what, "rope_scaling", params, "is not supported; zoo rotary positions are unscaled")
    return float(params.get("rope_theta", getattr(hf, "rope_theta", 10000.0)))


def _llama_config(hf: Any, state: Mapping[str, Tensor]) -> GPTConfig:
    what = "LLaMA config"
    _check_common(what, hf)
    if hf.attention_bias != hf.mlp_bias:
        raise _refuse(what, "mlp_bias", hf.mlp_bias,
                      f"differs from attention_bias={hf.attention_bias}; zoo has one bias switch")
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv_heads = hf.num_key_value_heads or hf.num_attention_heads
    tied = _head_tied(state, "lm_head.weight", "model.embed_tokens.weight", hf.tie_word_embeddings, what)
    return GPTConfig(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
        num_kv_heads=None if kv_heads == hf.num_attention_heads else kv_heads,
        head_dim=None if head_dim * hf.num_attention_heads == hf.hidden_size else head_dim,
        ffn_dim=hf.intermediate_size, activation=_activation(what, "hidden_act", hf.hidden_act, GATED_ACTIVATIONS),
        norm="rmsnorm", norm_placement="pre", norm_eps=hf.rms_norm_eps, position="rotary",
        dropout=float(hf.attention_dropout or 0.0), bias=bool(hf.attention_bias), tie_embeddings=tied,
        rope_base=_rope_theta(hf, what), init_std=hf.initializer_range, **_special_ids(hf),
    )


def _t5_config(hf: Any, state: Mapping[str, Tensor]) -> T5Config:
    what = "T5 config"
    table = GATED_ACTIVATIONS if hf.is_gated_act else PLAIN_ACTIVATIONS
    if not isinstance(hf.dense_act_fn, str) or hf.dense_act_fn not in table:
        raise _refuse(what, "feed_forward_proj", hf.feed_forward_proj, "is not supported by the zoo blocks")
    config_tied = getattr(hf, "tie_word_embeddings", True)
    tied = _head_tied(state, "lm_head.weight", "shared.weight", config_tied, what)
    scale = bool(getattr(hf, "scale_decoder_outputs", config_tied))  # transformers 5 / 4
    num_decoder_layers = hf.num_decoder_layers if hf.num_decoder_layers is not None else hf.num_layers
    ids = _special_ids(hf)
    ids.pop("bos_token_id", None)  # T5 starts decoding from pad; it has no bos
    return T5Config(
        vocab_size=hf.vocab_size, embed_dim=hf.d_model, num_layers=hf.num_layers,
        num_decoder_layers=None if num_decoder_layers == hf.num_layers else num_decoder_layers,
        num_heads=hf.num_heads, head_dim=None if hf.d_kv * hf.num_heads == hf.d_model else hf.d_kv,
        ffn_dim=hf.d_ff, activation=table[hf.dense_act_fn], norm="rmsnorm", norm_placement="pre",
        norm_eps=hf.layer_norm_epsilon, position="relative", dropout=float(hf.dropout_rate), bias=False,
        tie_embeddings=tied, attention_scale=1.0, scale_decoder_output=None if scale == tied else scale,
        relative_num_buckets=hf.relative_attention_num_buckets,
        relative_max_distance=hf.relative_attention_max_distance, **ids,
    )


# --------------------------------------------------------------------------------------------------
# Config translations: zoo -> Hugging Face


def _require(what: str, config: TransformerConfig, field: str, allowed: tuple, why: str) -> None:
    value = getattr(config, field)
    if value not in allowed:
        raise _refuse(what, field, value, f"cannot be exported: {why}")


def _check_heads(what: str, c: TransformerConfig, gqa: bool) -> None:
    if not gqa:
        _require(what, c, "num_kv_heads", (None, c.num_heads), "it has no grouped-query attention")
    if c.embed_dim % c.num_heads:
        raise _refuse(what, "num_heads", c.num_heads, f"cannot be exported: it must divide embed_dim={c.embed_dim}")
    if not gqa and c.resolved_head_dim != c.embed_dim // c.num_heads:
        raise _refuse(what, "head_dim", c.head_dim, "cannot be exported: it must be embed_dim // num_heads")


def _bert_hf_config(c: BertConfig) -> Any:
    import transformers

    what = "zoo BERT -> BertForMaskedLM"
    _require(what, c, "position", ("learned",), "BERT has learned positions")
    _require(what, c, "norm", ("layernorm",), "BERT uses LayerNorm")
    _require(what, c, "norm_placement", ("post",), "BERT is post-norm")
    _require(what, c, "bias", (True,), "BERT has biases")
    _require(what, c, "attention_scale", (None,), "BERT scales scores by 1/sqrt(head_dim)")
    _require(what, c, "activation", ("gelu", "gelu_tanh", "relu"), "BERT has a plain (ungated) MLP")
    _check_heads(what, c, gqa=False)
    return transformers.BertConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads, intermediate_size=c.resolved_ffn_dim,
        hidden_act={"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[c.activation],
        hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout, max_position_embeddings=c.max_seq_len,
        type_vocab_size=max(1, c.type_vocab_size), initializer_range=c.init_std, layer_norm_eps=c.norm_eps,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
        tie_word_embeddings=c.tie_embeddings,
    )


def _gpt2_hf_config(c: GPTConfig) -> Any:
    import transformers

    what = "zoo GPT with learned positions -> GPT2LMHeadModel"
    _require(what, c, "norm", ("layernorm",), "GPT-2 uses LayerNorm (RMSNorm needs position='rotary', LLaMA)")
    _require(what, c, "norm_placement", ("pre",), "GPT-2 is pre-norm")
    _require(what, c, "bias", (True,), "GPT-2 has biases")
    _require(what, c, "attention_scale", (None, 1.0), "GPT-2 scales scores by 1/sqrt(head_dim) or not at all")
    _require(what, c, "activation", ("gelu_tanh", "gelu", "relu"), "GPT-2 has a plain (ungated) MLP")
    _check_heads(what, c, gqa=False)
    return transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.max_seq_len, n_embd=c.embed_dim, n_layer=c.num_layers,
        n_head=c.num_heads, n_inner=c.resolved_ffn_dim,
        activation_function={"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[c.activation],
        resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, layer_norm_epsilon=c.norm_eps,
        initializer_range=c.init_std, scale_attn_weights=c.attention_scale is None,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
        tie_word_embeddings=c.tie_embeddings,
    )


def _llama_hf_config(c: GPTConfig) -> Any:
    import transformers

    what = "zoo GPT with rotary positions -> LlamaForCausalLM"
    _require(what, c, "norm", ("rmsnorm",), "LLaMA uses RMSNorm")
    _require(what, c, "norm_placement", ("pre",), "LLaMA is pre-norm")
    _require(what, c, "attention_scale", (None,), "LLaMA scales scores by 1/sqrt(head_dim)")
    acts = {"swiglu": "silu", "geglu": "gelu", "geglu_tanh": "gelu_pytorch_tanh"}
    _require(what, c, "activation", tuple(acts), "LLaMA has a gated MLP")
    _check_heads(what, c, gqa=True)
    return transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.resolved_ffn_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
        num_key_value_heads=c.num_kv_heads or c.num_heads, head_dim=c.resolved_head_dim,
        hidden_act=acts[c.activation], max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps,
        rope_theta=c.rope_base, attention_bias=c.bias, mlp_bias=c.bias, attention_dropout=c.dropout,
        initializer_range=c.init_std, pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id, tie_word_embeddings=c.tie_embeddings,
    )


def _t5_hf_config(c: T5Config) -> Any:
    import transformers

    what = "zoo T5 -> T5ForConditionalGeneration"
    _require(what, c, "position", ("relative",), "T5 has a relative position bias")
    _require(what, c, "norm", ("rmsnorm",), "T5 uses RMSNorm")
    _require(what, c, "norm_placement", ("pre",), "T5 is pre-norm")
    _require(what, c, "bias", (False,), "T5 has no biases")
    _require(what, c, "attention_scale", (1.0,), "T5 does not scale attention scores")
    _require(what, c, "num_kv_heads", (None, c.num_heads), "T5 has no grouped-query attention")
    projections = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "swiglu": "gated-silu",
                   "geglu": "gated-gelu_python", "geglu_tanh": "gated-gelu"}
    scale = c.resolved_scale_decoder_output
    hf = transformers.T5Config(
        vocab_size=c.vocab_size, d_model=c.embed_dim, d_kv=c.resolved_head_dim, d_ff=c.resolved_ffn_dim,
        num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers or c.num_layers, num_heads=c.num_heads,
        relative_attention_num_buckets=c.relative_num_buckets,
        relative_attention_max_distance=c.relative_max_distance, dropout_rate=c.dropout,
        layer_norm_epsilon=c.norm_eps, feed_forward_proj=projections[c.activation],
        pad_token_id=c.pad_token_id, eos_token_id=c.eos_token_id, decoder_start_token_id=c.pad_token_id,
        tie_word_embeddings=scale,  # transformers 5: decides the scaling only; the head is always tied
    )
    if not hasattr(hf, "scale_decoder_outputs") and scale != c.tie_embeddings:  # transformers 4
        raise _refuse(what, "scale_decoder_output", c.scale_decoder_output,
                      "cannot be exported: this transformers version scales exactly when the head is tied")
    return hf


# --------------------------------------------------------------------------------------------------
# Families


@dataclass(frozen=True)
class _Family:
    hf_class: str
    config_class: str
    model_class: type[ZooModel]
    prefix: str  # base-model prefix in the head class's names; old checkpoints may lack it
    head: str  # HF name of the output head's weight
    zoo_config: Callable[[Any, Mapping[str, Tensor]], TransformerConfig]
    hf_config: Callable[[Any], Any]
    weights: Callable[[Any, Mapping[str, Tensor] | None], Iterator[Weight]]
    # HF tensors with no zoo counterpart that do not change the logits (regexes).
    ignored: tuple[str, ...] = ()
    # HF names that may repeat another tensor (tied copies): accepted only when equal to it.
    aliases: tuple[tuple[str, str], ...] = ()


FAMILIES = {
    "bert": _Family(
        "BertForMaskedLM", "BertConfig", BERT, "bert.", "cls.predictions.decoder.weight",
        _bert_config, _bert_hf_config, _bert_weights,
        ignored=(r"^bert\.pooler\.", r"^cls\.seq_relationship\.", r"^bert\.embeddings\.(position|token_type)_ids$"),
        aliases=(("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),),
    ),
    "gpt2": _Family(
        "GPT2LMHeadModel", "GPT2Config", GPT, "transformer.", "lm_head.weight",
        _gpt2_config, _gpt2_hf_config, _gpt2_weights,
        ignored=(r"\.attn\.(masked_)?bias$",),  # causal-mask buffers of older checkpoints
        aliases=(("lm_head.weight", "transformer.wte.weight"),),
    ),
    "llama": _Family(
        "LlamaForCausalLM", "LlamaConfig", GPT, "model.", "lm_head.weight",
        _llama_config, _llama_hf_config, _llama_weights,
        ignored=(r"\.rotary_emb\.inv_freq$",),
        aliases=(("lm_head.weight", "model.embed_tokens.weight"),),
    ),
    "t5": _Family(
        "T5ForConditionalGeneration", "T5Config", T5, "", "lm_head.weight",
        _t5_config, _t5_hf_config, _t5_weights,
        # transformers itself ignores this one: only the first self-attention layer holds the bias.
        ignored=(r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",),
        aliases=(("lm_head.weight", "shared.weight"), ("encoder.embed_tokens.weight", "shared.weight"),
                 ("decoder.embed_tokens.weight", "shared.weight")),
    ),
}
SUPPORTED_CLASSES = tuple(f.hf_class for f in FAMILIES.values())


def _family_of_zoo(model: ZooModel) -> _Family:
    if isinstance(model, BERT):
        return FAMILIES["bert"]
    if isinstance(model, T5):
        return FAMILIES["t5"]
    if isinstance(model, GPT):
        position = model.config.position
        if position == "rotary":
            return FAMILIES["llama"]
        if position == "learned":
            return FAMILIES["gpt2"]
        raise ValueError(f"zoo GPT: position={position!r} cannot be exported: GPT-2 needs 'learned', LLaMA 'rotary'")
    raise ValueError(f"to_hf takes a zoo BERT, GPT or T5 model, got {type(model).__name__}")


# --------------------------------------------------------------------------------------------------
# Weights in and out


def _normalise_names(family: _Family, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Names as the head class has them: add a missing base-model prefix (original GPT-2 files),
    and LayerNorm ``gamma``/``beta`` of the first BERT files become ``weight``/``bias``."""
    out = {}
    prefixed = not family.prefix or any(k.startswith(family.prefix) for k in state)
    for key, tensor in state.items():
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))
        if not prefixed and not key.startswith(("lm_head.", "cls.")):
            key = family.prefix + key
        out[key] = tensor
    return out


def _import_state(family: _Family, config: TransformerConfig, state: Mapping[str, Tensor],
                  model: ZooModel, source: str) -> dict[str, Tensor]:
    """The zoo state dict made of HF ``state``; every HF tensor must be used, ignorable or a tied copy."""
    expected = model.state_dict()
    out, used = {}, set()
    for w in family.weights(config, state):
        parts = []
        rows = w.rows or ((expected[w.zoo].shape[0],) if w.zoo else (w.shape[0],))
        trailing = tuple(expected[w.zoo].shape[1:]) if w.zoo else tuple(w.shape[1:])
        for key, n in zip(w.hf, rows, strict=True):
            if key not in state:
                raise ValueError(f"{source}: missing tensor {key}")
            tensor, shape = state[key], (n, *trailing)
            if w.conv1d:
                shape = shape[::-1]
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{source}: tensor {key} has shape {tuple(tensor.shape)}; the config needs {shape}")
            parts.append(tensor.t() if w.conv1d and tensor.ndim == 2 else tensor)
            used.add(key)
        used.update(w.copies)
        if w.zoo is None:
            if parts[0].any():
                raise ValueError(f"{source}: tensor {w.hf[0]} must be all zeros: the zoo model has no place for it")
            continue
        out[w.zoo] = torch.cat(parts) if len(parts) > 1 else parts[0]
    for alias, original in family.aliases:
        if alias in state and alias not in used:
            if original in state and state[alias].shape == state[original].shape \
                    and torch.equal(state[alias], state[original]):
                used.add(alias)
            else:
                raise ValueError(f"{source}: tensor {alias} differs from {original}; the zoo model shares one")
    for key in state:
        if key not in used and not any(re.search(p, key) for p in family.ignored):
            raise ValueError(f"{source}: unexpected tensor {key} (not part of a {family.hf_class} of this config)")
    _fill_tied(model, out)
    return out


def _fill_tied(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Give every name of a shared (tied) parameter the tensor one of its names received."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    for names in groups.values():
        present = [n for n in names if n in state]
        for name in names:
            if present:
                state.setdefault(name, state[present[0]])


def _read_weights(directory: Path) -> dict[str, Tensor]:
    """All tensors of a save_pretrained directory: safetensors or PyTorch ``.bin``, sharded or not."""
    from safetensors.torch import load_file

    def load(file: Path) -> dict[str, Tensor]:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        return torch.load(file, map_location="cpu", weights_only=True)

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (directory / single).is_file():
            return load(directory / single)
        if (directory / index).is_file():
            shards = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
            state: dict[str, Tensor] = {}
            for shard in shards:
                state.update(load(directory / shard))
            return state
    raise ValueError(f"{directory} holds no weights (model.safetensors or pytorch_model.bin)")


def _read_directory(path: str | os.PathLike) -> tuple[_Family, Any, dict[str, Tensor]]:
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{directory} has no config.json (not a Hugging Face model directory)")
    try:
        raw = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type not in FAMILIES:
        raise ValueError(f"{config_file}: model_type={model_type!r} is not supported; supported: {sorted(FAMILIES)}")
    family = FAMILIES[model_type]
    import transformers

    try:
        hf_config = getattr(transformers, family.config_class).from_pretrained(str(directory))
    except Exception as error:  # transformers' own validation errors run over several lines
        message = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{config_file}: {message}") from error
    try:
        state = _read_weights(directory)
    except ValueError:
        raise
    except Exception as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory}: cannot read the weights ({type(error).__name__}: {detail})") from error
    return family, hf_config, state


def from_hf(model_or_path: Any) -> ZooModel:
    """The zoo model equivalent to a Hugging Face one, weights included.

    Args:
        model_or_path: A ``BertForMaskedLM``, ``GPT2LMHeadModel``, ``LlamaForCausalLM`` or
            ``T5ForConditionalGeneration`` instance, or a local directory written by ``save_pretrained``
            (``config.json`` plus safetensors or ``.bin`` weights). Nothing is downloaded.

    Returns:
        ``zoo.models.BERT``, ``GPT`` (GPT-2 and LLaMA) or ``T5`` with its config derived from the HF
        config, in float32 (torch's default dtype), in eval mode on the CPU for a directory and in
        the instance's mode and on its device otherwise.

    Raises:
        ValueError: (one line) an unsupported class or ``model_type``, an HF option the zoo cannot
            express, or a missing, unexpected or mis-shaped tensor.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        source = str(model_or_path)
        family, hf_config, state = _read_directory(model_or_path)
        training, device = False, torch.device("cpu")
    else:
        name = type(model_or_path).__name__
        family = next((f for f in FAMILIES.values() if f.hf_class == name), None)
        if family is None or not isinstance(model_or_path, nn.Module):
            raise ValueError(f"from_hf: {name} is not supported; it takes {', '.join(SUPPORTED_CLASSES)} "
                             "or a save_pretrained directory")
        source, hf_config, training = name, model_or_path.config, model_or_path.training
        state = dict(model_or_path.state_dict())
        device = next(model_or_path.parameters()).device
    state = _normalise_names(family, state)
    config = family.zoo_config(hf_config, state)
    model = family.model_class(config)
    model.load_state_dict(_import_state(family, config, state, model, source))
    return model.to(device).train(training)


def to_hf(model: ZooModel) -> Any:
    """The Hugging Face model equivalent to a zoo one, weights included.

    The class follows the zoo family and config: ``BERT`` -> ``BertForMaskedLM``; ``GPT`` with learned
    positions -> ``GPT2LMHeadModel``, with rotary positions -> ``LlamaForCausalLM``; ``T5`` ->
    ``T5ForConditionalGeneration``. The result has the zoo model's dtype, device and train/eval mode.

    Raises:
        ValueError: (one line) a zoo config that class cannot express exactly, naming the field.
    """
    import transformers

    family = _family_of_zoo(model)
    config = model.config
    if config.resolved_scale_embedding:
        raise _refuse(f"zoo {type(model).__name__} -> {family.hf_class}", "scale_embedding", True,
                      "cannot be exported: its token embeddings are not scaled by sqrt(embed_dim)")
    hf = getattr(transformers, family.hf_class)(family.hf_config(config))
    head = hf.get_output_embeddings().weight
    if not config.tie_embeddings and head is hf.get_input_embeddings().weight:
        # transformers 5 ties T5's head whatever the config says: give it its own tensor, as
        # from_pretrained does for a checkpoint whose head differs from the embedding.
        hf.get_output_embeddings().weight = nn.Parameter(head.detach().clone())
        getattr(hf, "all_tied_weights_keys", {}).pop(family.head, None)
    zoo_state = model.state_dict()
    state: dict[str, Tensor] = {}
    for w in family.weights(config, None):
        if w.zoo is None:
            state[w.hf[0]] = torch.zeros(w.shape)
            continue
        tensor = zoo_state[w.zoo]
        parts = tensor.split(list(w.rows)) if w.rows else (tensor,)
        for key, part in zip(w.hf, parts, strict=True):
            state[key] = part.t() if w.conv1d and part.ndim == 2 else part
        for key in w.copies:
            state[key] = tensor
    _fill_tied(hf, state)
    missing = sorted(set(hf.state_dict()) - set(state))
    if missing:  # a gap in the weight table above, not a user error
        raise RuntimeError(f"zoo.hf: no zoo tensor for {missing} of {family.hf_class}")
    hf.load_state_dict(state, strict=True)
    reference = next(model.parameters())
    return hf.to(device=reference.device, dtype=reference.dtype).train(model.training)


def save_pretrained(model: ZooModel, directory: str | os.PathLike, **kwargs: Any) -> Any:
    """Write ``to_hf(model)`` to ``directory`` (``config.json`` + ``model.safetensors``), loadable with
    ``AutoModelForMaskedLM`` / ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM.from_pretrained``.
    Keyword arguments go to transformers' ``save_pretrained``. Returns the Hugging Face model."""
    hf = to_hf(model)
    hf.save_pretrained(str(directory), **kwargs)
    return hf
