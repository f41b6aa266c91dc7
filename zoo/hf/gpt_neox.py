"""``GPTNeoXForCausalLM`` <-> zoo ``GPT`` with rotary positions and LayerNorm (Pythia, GPT-NeoX-20B):
pre-norm LayerNorm with biases, a plain MLP, the parallel residual (``use_parallel_residual``:
``x + attn(ln_1(x)) + mlp(ln_2(x))``, zoo ``residual="parallel"``) and partial rotary positions
(``partial_rotary_factor`` of each head's dimensions, the first ones; zoo ``rotary_fraction``).

Tensor layout: ``query_key_value`` interleaves the heads, rows ``(head, q|k|v, d)``, where the zoo has
separate ``q_proj``, ``k_proj``, ``v_proj``; ``unfuse``/``fuse`` split and rebuild it.
"""

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
    refuse,
    refuse_switches,
    require,
    special_ids,
)
from zoo.hf.llama import rope_theta
from zoo.models import GPTConfig

HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "relu2": "relu2"}


def _rotary_factor(hf: Any) -> float:
    params = dict(getattr(hf, "rope_parameters", None) or {})  # transformers 5
    return float(params.get("partial_rotary_factor", getattr(hf, "rotary_pct", 1.0)))  # rotary_pct: 4


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``GPTNeoXConfig``."""
    what = "GPT-NeoX config"
    check_common(what, hf)
    if not getattr(hf, "attention_bias", True):
        raise refuse(what, "attention_bias", False, "cannot be expressed: its MLP has biases and zoo has one "
                     "bias switch")
    head_dim = hf.hidden_size // hf.num_attention_heads
    rotary_dims = int(head_dim * _rotary_factor(hf))  # what GPT-NeoX rotates
    tied = head_tied(state, "lm_head.weight", "gpt_neox.embed_in.weight", hf.tie_word_embeddings, what)
    if hasattr(hf, "rope_parameters"):
        base = rope_theta(hf, what)
    else:  # transformers 4
        base = float(getattr(hf, "rotary_emb_base", 10000.0))
    return dict(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads, ffn_dim=hf.intermediate_size,
        activation=activation(what, "hidden_act", hf.hidden_act, PLAIN_ACTIVATIONS),
        norm="layernorm", norm_placement="pre", norm_eps=hf.layer_norm_eps, position="rotary",
        rotary_fraction=rotary_dims / head_dim, rope_base=base,
        residual="parallel" if hf.use_parallel_residual else "sequential",
        dropout=float(hf.hidden_dropout or 0.0), bias=True, tie_embeddings=tied, init_std=hf.initializer_range,
        **special_ids(hf),
    )


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``GPTNeoXConfig`` of a zoo one; refuses what GPT-NeoX cannot express."""
    import transformers

    what = "zoo GPT with rotary positions and LayerNorm -> GPTNeoXForCausalLM"
    require(what, c, "norm_placement", ("pre",), "GPT-NeoX is pre-norm")
    require(what, c, "bias", (True,), "GPT-NeoX has biases")
    require(what, c, "attention_scale", (None,), "GPT-NeoX scales scores by 1/sqrt(head_dim)")
    require(what, c, "activation", tuple(HF_ACTIVATIONS), "GPT-NeoX has a plain (ungated) MLP")
    check_heads(what, c, gqa=False)
    refuse_switches(what, c, ("residual", "rotary_fraction"))
    head_dim = c.resolved_head_dim
    if int(head_dim * c.rotary_fraction) != c.rotary_dims:  # GPT-NeoX truncates head_dim · factor
        raise refuse(what, "rotary_fraction", c.rotary_fraction,
                     f"cannot be exported: int({head_dim} * it) is not {c.rotary_dims} in floating point")
    return transformers.GPTNeoXConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads, intermediate_size=c.resolved_ffn_dim,
        hidden_act=HF_ACTIVATIONS[c.activation], max_position_embeddings=c.max_seq_len, layer_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_base, "partial_rotary_factor": c.rotary_fraction},
        use_parallel_residual=c.residual == "parallel", attention_bias=True, hidden_dropout=c.dropout,
        attention_dropout=c.dropout, initializer_range=c.init_std, pad_token_id=c.pad_token_id,
        bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, tie_word_embeddings=c.tie_embeddings,
    )


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``GPTNeoXForCausalLM`` tensors (queries, keys and values as ``unfuse``
    splits them)."""
    yield Weight("embed_tokens.weight", ("gpt_neox.embed_in.weight",))
    for i in range(c.num_layers):
        zoo, hf = f"decoder.layers.{i}", f"gpt_neox.layers.{i}"
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.input_layernorm", True)
        qkv = tuple(f"{hf}.attention.{n}" for n in ("query", "key", "value"))
        yield from attention_projections(f"{zoo}.self_attn", qkv, True)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.attention.dense", True)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.post_attention_layernorm", True)
        yield from linear(f"{zoo}.ffn.up_proj", f"{hf}.mlp.dense_h_to_4h", True)
        yield from linear(f"{zoo}.ffn.down_proj", f"{hf}.mlp.dense_4h_to_h", True)
    yield from norm("decoder.final_norm", "gpt_neox.final_layer_norm", True)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


def unfuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``query_key_value`` rows ``(head, q|k|v, d)`` -> separate ``query``/``key``/``value`` tensors."""
    out = dict(state)
    h, d = c.num_heads, c.resolved_head_dim
    for i in range(c.num_layers):
        for kind in ("weight", "bias"):
            fused = out.pop(f"gpt_neox.layers.{i}.attention.query_key_value.{kind}", None)
            if fused is None:
                continue  # a missing tensor is reported by the weight table
            if fused.shape[0] != 3 * h * d:
                raise ValueError(f"tensor gpt_neox.layers.{i}.attention.query_key_value.{kind} has shape "
                                 f"{tuple(fused.shape)}; the config needs {3 * h * d} rows")
            parts = fused.reshape(h, 3, d, *fused.shape[1:]).unbind(1)  # 3 × (h, d, ...)
            for name, part in zip(("query", "key", "value"), parts, strict=True):
                out[f"gpt_neox.layers.{i}.attention.{name}.{kind}"] = part.reshape(h * d, *fused.shape[1:])
    return out


def fuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of ``unfuse``: interleave the heads' queries, keys and values again."""
    out = dict(state)
    h, d = c.num_heads, c.resolved_head_dim
    for i in range(c.num_layers):
        for kind in ("weight", "bias"):
            parts = [out.pop(f"gpt_neox.layers.{i}.attention.{name}.{kind}") for name in ("query", "key", "value")]
            rest = parts[0].shape[1:]
            stacked = [p.reshape(h, d, *rest) for p in parts]
            out[f"gpt_neox.layers.{i}.attention.query_key_value.{kind}"] = torch.stack(stacked, 1).reshape(
                3 * h * d, *rest)
    return out


ARCHITECTURE = Architecture(
    hf_class="GPTNeoXForCausalLM", config_class="GPTNeoXConfig", prefix="gpt_neox.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    # Causal-mask buffers and rotary frequencies of older checkpoints, all recomputed.
    ignored=(r"\.attention\.(masked_)?bias$", r"\.rotary_emb\.inv_freq$"),
    aliases=(("lm_head.weight", "gpt_neox.embed_in.weight"),),
    renames=((r"^embed_out\.", "lm_head."),),  # the head's name before transformers 5
    export_when={"position": "rotary", "norm": "layernorm"},
    unfuse=unfuse, fuse=fuse,
)
