"""``GPT2LMHeadModel`` <-> zoo ``GPT`` with learned positions: pre-norm LayerNorm, biases, a plain
MLP, and ``Conv1D`` layers that store linear weights transposed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from zoo.hf._common import (
    PLAIN_ACTIVATIONS,
    Architecture,
    Weight,
    activation,
    attention_projections,
    check_common,
    check_heads,
    head_tied,
    linear,
    norm,
    qkv_rows,
    refuse,
    refuse_switches,
    require,
    special_ids,
)
from zoo.models import GPTConfig


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``GPT2Config``."""
    what = "GPT-2 config"
    check_common(what, hf)
    if hf.scale_attn_by_inverse_layer_idx:
        raise refuse(what, "scale_attn_by_inverse_layer_idx", True,
                     "cannot be expressed: zoo layers share one attention scale")
    # reorder_and_upcast_attn changes only the order of fp operations, not the function.
    tied = head_tied(state, "lm_head.weight", "transformer.wte.weight", hf.tie_word_embeddings, what)
    return dict(
        vocab_size=hf.vocab_size, max_seq_len=hf.n_positions, embed_dim=hf.n_embd, num_layers=hf.n_layer,
        num_heads=hf.n_head, ffn_dim=hf.n_inner or 4 * hf.n_embd,
        activation=activation(what, "activation_function", hf.activation_function, PLAIN_ACTIVATIONS),
        norm="layernorm", norm_placement="pre", norm_eps=hf.layer_norm_epsilon, position="learned",
        dropout=float(hf.resid_pdrop), bias=True, tie_embeddings=tied,
        attention_scale=None if hf.scale_attn_weights else 1.0, init_std=hf.initializer_range, **special_ids(hf),
    )


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``GPT2Config`` of a zoo one; refuses what GPT-2 cannot express."""
    import transformers

    what = "zoo GPT with learned positions -> GPT2LMHeadModel"
    require(what, c, "norm", ("layernorm",), "GPT-2 uses LayerNorm (RMSNorm needs position='rotary', LLaMA)")
    require(what, c, "norm_placement", ("pre",), "GPT-2 is pre-norm")
    require(what, c, "bias", (True,), "GPT-2 has biases")
    require(what, c, "attention_scale", (None, 1.0), "GPT-2 scales scores by 1/sqrt(head_dim) or not at all")
    require(what, c, "activation", ("gelu_tanh", "gelu", "relu"), "GPT-2 has a plain (ungated) MLP")
    check_heads(what, c, gqa=False)
    refuse_switches(what, c)
    return transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.max_seq_len, n_embd=c.embed_dim, n_layer=c.num_layers,
        n_head=c.num_heads, n_inner=c.resolved_ffn_dim,
        activation_function={"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[c.activation],
        resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, layer_norm_epsilon=c.norm_eps,
        initializer_range=c.init_std, scale_attn_weights=c.attention_scale is None,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
        tie_word_embeddings=c.tie_embeddings,
    )


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``GPT2LMHeadModel`` tensors; the fused ``c_attn`` as ``unfuse`` splits it."""
    yield Weight("embed_tokens.weight", ("transformer.wte.weight",))
    yield Weight("decoder.absolute_positions.embedding.weight", ("transformer.wpe.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"transformer.h.{i}"
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.ln_1", True)
        qkv = tuple(f"{hf}.attn.c_attn.{part}" for part in "qkv")
        yield from attention_projections(f"{zoo}.self_attn", qkv, True, conv1d=True)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.attn.c_proj", True, conv1d=True)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.ln_2", True)
        yield from linear(f"{zoo}.ffn.up_proj", f"{hf}.mlp.c_fc", True, conv1d=True)
        yield from linear(f"{zoo}.ffn.down_proj", f"{hf}.mlp.c_proj", True, conv1d=True)
    yield from norm("decoder.final_norm", "transformer.ln_f", True)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


def unfuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``c_attn`` (a ``Conv1D``: weight ``(e, q|k|v)``, bias ``(q|k|v)``) -> ``c_attn.q``, ``.k``, ``.v``,
    the names the weight table gives the zoo's separate projections."""
    out = dict(state)
    sizes = list(qkv_rows(c))
    for i in range(c.num_layers):
        for kind in ("weight", "bias"):
            name = f"transformer.h.{i}.attn.c_attn.{kind}"
            fused = out.pop(name, None)
            if fused is None:
                continue  # a missing tensor is reported by the weight table
            needs = (c.embed_dim, sum(sizes)) if kind == "weight" else (sum(sizes),)
            if tuple(fused.shape) != needs:
                raise ValueError(f"tensor {name} has shape {tuple(fused.shape)}; the config needs {needs}")
            for part, tensor in zip("qkv", fused.split(sizes, dim=-1), strict=True):
                out[f"transformer.h.{i}.attn.c_attn.{part}.{kind}"] = tensor.contiguous()
    return out


def fuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of ``unfuse``: one ``c_attn`` per layer again."""
    out = dict(state)
    for i in range(c.num_layers):
        for kind in ("weight", "bias"):
            parts = [out.pop(f"transformer.h.{i}.attn.c_attn.{part}.{kind}") for part in "qkv"]
            out[f"transformer.h.{i}.attn.c_attn.{kind}"] = torch.cat(parts, dim=-1)
    return out


ARCHITECTURE = Architecture(
    hf_class="GPT2LMHeadModel", config_class="GPT2Config", prefix="transformer.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=(r"\.attn\.(masked_)?bias$",),  # causal-mask buffers of older checkpoints
    aliases=(("lm_head.weight", "transformer.wte.weight"),),
    export_when={"position": "learned"},
    unfuse=unfuse, fuse=fuse,
)
