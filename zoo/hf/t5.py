"""``T5ForConditionalGeneration`` <-> zoo ``T5``: bucketed relative position bias held by the first
layer of each stack, pre-norm RMSNorm, no biases, unscaled attention scores (``attention_scale=1.0``)
and a decoder output scaled by 1/sqrt(embed_dim) in the original (tied) T5."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf._common import (
    GATED_ACTIVATIONS,
    PLAIN_ACTIVATIONS,
    Architecture,
    Weight,
    attention_projections,
    head_tied,
    linear,
    norm,
    refuse,
    refuse_switches,
    require,
    special_ids,
)
from zoo.models import T5Config

# zoo activation -> T5's feed_forward_proj ("gated-" + ACT2FN name for a gated MLP).
PROJECTIONS = {"relu": "relu", "relu2": "relu2", "gelu": "gelu", "gelu_tanh": "gelu_new", "swiglu": "gated-silu",
               "geglu": "gated-gelu_python", "geglu_tanh": "gated-gelu"}


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``T5Config`` fields of a transformers ``T5Config``."""
    what = "T5 config"
    table = GATED_ACTIVATIONS if hf.is_gated_act else PLAIN_ACTIVATIONS
    if not isinstance(hf.dense_act_fn, str) or hf.dense_act_fn not in table:
        raise refuse(what, "feed_forward_proj", hf.feed_forward_proj, "is not supported by the zoo blocks")
    config_tied = getattr(hf, "tie_word_embeddings", True)
    tied = head_tied(state, "lm_head.weight", "shared.weight", config_tied, what)
    scale = bool(getattr(hf, "scale_decoder_outputs", config_tied))  # transformers 5 / 4
    num_decoder_layers = hf.num_decoder_layers if hf.num_decoder_layers is not None else hf.num_layers
    ids = special_ids(hf)
    ids.pop("bos_token_id", None)  # T5 starts decoding from pad; it has no bos
    return dict(
        vocab_size=hf.vocab_size, embed_dim=hf.d_model, num_layers=hf.num_layers,
        num_decoder_layers=None if num_decoder_layers == hf.num_layers else num_decoder_layers,
        num_heads=hf.num_heads, head_dim=None if hf.d_kv * hf.num_heads == hf.d_model else hf.d_kv,
        ffn_dim=hf.d_ff, activation=table[hf.dense_act_fn], norm="rmsnorm", norm_placement="pre",
        norm_eps=hf.layer_norm_epsilon, position="relative", dropout=float(hf.dropout_rate), bias=False,
        tie_embeddings=tied, attention_scale=1.0, scale_decoder_output=None if scale == tied else scale,
        relative_num_buckets=hf.relative_attention_num_buckets,
        relative_max_distance=hf.relative_attention_max_distance, **ids,
    )


def hf_config(c: T5Config) -> Any:
    """The transformers ``T5Config`` of a zoo one; refuses what T5 cannot express."""
    import transformers

    what = "zoo T5 -> T5ForConditionalGeneration"
    require(what, c, "position", ("relative",), "T5 has a relative position bias")
    require(what, c, "norm", ("rmsnorm",), "T5 uses RMSNorm")
    require(what, c, "norm_placement", ("pre",), "T5 is pre-norm")
    require(what, c, "bias", (False,), "T5 has no biases")
    require(what, c, "attention_scale", (1.0,), "T5 does not scale attention scores")
    require(what, c, "num_kv_heads", (None, c.num_heads), "T5 has no grouped-query attention")
    refuse_switches(what, c)
    scale = c.resolved_scale_decoder_output
    hf = transformers.T5Config(
        vocab_size=c.vocab_size, d_model=c.embed_dim, d_kv=c.resolved_head_dim, d_ff=c.resolved_ffn_dim,
        num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers or c.num_layers, num_heads=c.num_heads,
        relative_attention_num_buckets=c.relative_num_buckets,
        relative_attention_max_distance=c.relative_max_distance, dropout_rate=c.dropout,
        layer_norm_epsilon=c.norm_eps, feed_forward_proj=PROJECTIONS[c.activation],
        pad_token_id=c.pad_token_id, eos_token_id=c.eos_token_id, decoder_start_token_id=c.pad_token_id,
        tie_word_embeddings=scale,  # transformers 5: decides the scaling only; the head is always tied
    )
    if not hasattr(hf, "scale_decoder_outputs") and scale != c.tie_embeddings:  # transformers 4
        raise refuse(what, "scale_decoder_output", c.scale_decoder_output,
                     "cannot be exported: this transformers version scales exactly when the head is tied")
    return hf


def weights(c: T5Config, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``T5`` tensors <-> ``T5ForConditionalGeneration`` tensors, encoder then decoder."""
    yield Weight("embed_tokens.weight", ("shared.weight",))
    gated = c.activation in GATED_ACTIVATIONS.values()
    for stack, num_layers in (("encoder", c.num_layers), ("decoder", c.num_decoder_layers or c.num_layers)):
        yield Weight(f"{stack}.position_bias.embedding.weight",
                     (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",))
        for i in range(num_layers):
            zoo, hf = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            attn = f"{hf}.0.SelfAttention"
            yield from attention_projections(f"{zoo}.self_attn", (f"{attn}.q", f"{attn}.k", f"{attn}.v"), False)
            yield from linear(f"{zoo}.self_attn.out_proj", f"{attn}.o", False)
            yield from norm(f"{zoo}.self_attn_norm", f"{hf}.0.layer_norm", False)
            ffn = 1
            if stack == "decoder":
                cross, ffn = f"{hf}.1.EncDecAttention", 2
                yield from attention_projections(f"{zoo}.cross_attn", (f"{cross}.q", f"{cross}.k", f"{cross}.v"), False)
                yield from linear(f"{zoo}.cross_attn.out_proj", f"{cross}.o", False)
                yield from norm(f"{zoo}.cross_attn_norm", f"{hf}.1.layer_norm", False)
            dense = f"{hf}.{ffn}.DenseReluDense"
            if gated:  # act(wi_0 x) * wi_1 x
                yield from linear(f"{zoo}.ffn.gate_proj", f"{dense}.wi_0", False)
                yield from linear(f"{zoo}.ffn.up_proj", f"{dense}.wi_1", False)
            else:
                yield from linear(f"{zoo}.ffn.up_proj", f"{dense}.wi", False)
            yield from linear(f"{zoo}.ffn.down_proj", f"{dense}.wo", False)
            yield from norm(f"{zoo}.ffn_norm", f"{hf}.{ffn}.layer_norm", False)
        yield from norm(f"{stack}.final_norm", f"{stack}.final_layer_norm", False)
    if not c.tie_embeddings:
        yield Weight("lm_head.weight", ("lm_head.weight",))


ARCHITECTURE = Architecture(
    hf_class="T5ForConditionalGeneration", config_class="T5Config", prefix="", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    # transformers itself ignores this one: only the first self-attention layer holds the bias.
    ignored=(r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",),
    aliases=(("lm_head.weight", "shared.weight"), ("encoder.embed_tokens.weight", "shared.weight"),
             ("decoder.embed_tokens.weight", "shared.weight")),
)
