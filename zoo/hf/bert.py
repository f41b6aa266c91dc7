"""``BertForMaskedLM`` <-> zoo ``BERT``: learned positions, post-norm LayerNorm, biases, segment
embeddings as ``type_vocab_size``, and an MLM head whose output bias HF keeps under two names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

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
from zoo.models import BertConfig

EMBEDDINGS = "bert.embeddings"
PREDICTIONS = "cls.predictions"


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``BertConfig`` fields of a transformers ``BertConfig`` (and the tensors it comes with)."""
    what = "BERT config"
    check_common(what, hf)
    if getattr(hf, "is_decoder", False):
        raise refuse(what, "is_decoder", True, "cannot be expressed: zoo BERT is a bidirectional encoder")
    position = getattr(hf, "position_embedding_type", "absolute")
    if position != "absolute":
        raise refuse(what, "position_embedding_type", position, "is not supported; only 'absolute' is")
    types = hf.type_vocab_size
    type_table = state.get(f"{EMBEDDINGS}.token_type_embeddings.weight")
    if types == 1 and type_table is not None and not type_table.any():
        types = 0  # the single all-zero row of an exported zoo BERT without segments
    tied = head_tied(state, f"{PREDICTIONS}.decoder.weight", f"{EMBEDDINGS}.word_embeddings.weight",
                     getattr(hf, "tie_word_embeddings", True), what)
    return dict(
        vocab_size=hf.vocab_size, max_seq_len=hf.max_position_embeddings, embed_dim=hf.hidden_size,
        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads, ffn_dim=hf.intermediate_size,
        activation=activation(what, "hidden_act", hf.hidden_act, PLAIN_ACTIVATIONS), norm_eps=hf.layer_norm_eps,
        dropout=float(hf.hidden_dropout_prob), bias=True, tie_embeddings=tied, init_std=hf.initializer_range,
        type_vocab_size=types, **special_ids(hf),
    )


def hf_config(c: BertConfig) -> Any:
    """The transformers ``BertConfig`` of a zoo one; refuses what BERT cannot express."""
    import transformers

    what = "zoo BERT -> BertForMaskedLM"
    require(what, c, "position", ("learned",), "BERT has learned positions")
    require(what, c, "norm", ("layernorm",), "BERT uses LayerNorm")
    require(what, c, "norm_placement", ("post",), "BERT is post-norm")
    require(what, c, "bias", (True,), "BERT has biases")
    require(what, c, "attention_scale", (None,), "BERT scales scores by 1/sqrt(head_dim)")
    require(what, c, "activation", ("gelu", "gelu_tanh", "relu"), "BERT has a plain (ungated) MLP")
    check_heads(what, c, gqa=False)
    refuse_switches(what, c)
    return transformers.BertConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads, intermediate_size=c.resolved_ffn_dim,
        hidden_act={"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[c.activation],
        hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout, max_position_embeddings=c.max_seq_len,
        # HF BERT always has a segment table; a zoo BERT without segments exports one all-zero row.
        type_vocab_size=max(1, c.type_vocab_size), initializer_range=c.init_std, layer_norm_eps=c.norm_eps,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
        tie_word_embeddings=c.tie_embeddings,
    )


def weights(c: BertConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``BERT`` tensors <-> ``BertForMaskedLM`` tensors."""
    e = EMBEDDINGS
    yield Weight("embed_tokens.weight", (f"{e}.word_embeddings.weight",))
    yield Weight("encoder.absolute_positions.embedding.weight", (f"{e}.position_embeddings.weight",))
    if c.type_vocab_size:
        yield Weight("embed_token_types.weight", (f"{e}.token_type_embeddings.weight",))
    else:  # one all-zero segment row adds nothing
        yield Weight(None, (f"{e}.token_type_embeddings.weight",), shape=(1, c.embed_dim))
    yield from norm("encoder.input_norm", f"{e}.LayerNorm", True)
    for i in range(c.num_layers):
        zoo, hf = f"encoder.layers.{i}", f"bert.encoder.layer.{i}"
        qkv = tuple(f"{hf}.attention.self.{n}" for n in ("query", "key", "value"))
        yield from attention_projections(f"{zoo}.self_attn", qkv, True)
        yield from linear(f"{zoo}.self_attn.out_proj", f"{hf}.attention.output.dense", True)
        yield from norm(f"{zoo}.self_attn_norm", f"{hf}.attention.output.LayerNorm", True)
        yield from linear(f"{zoo}.ffn.up_proj", f"{hf}.intermediate.dense", True)
        yield from linear(f"{zoo}.ffn.down_proj", f"{hf}.output.dense", True)
        yield from norm(f"{zoo}.ffn_norm", f"{hf}.output.LayerNorm", True)
    p = PREDICTIONS
    yield from linear("mlm_head.dense", f"{p}.transform.dense", True)
    yield from norm("mlm_head.norm", f"{p}.transform.LayerNorm", True)
    if not c.tie_embeddings:
        yield Weight("mlm_head.decoder.weight", (f"{p}.decoder.weight",))
    # The output bias is `decoder.bias` (an alias of `predictions.bias` when tied); transformers 5
    # leaves `predictions.bias` unused in an untied head. Files of a tied head store only `predictions.bias`.
    if state is None or f"{p}.decoder.bias" in state:
        yield Weight("mlm_head.bias", (f"{p}.decoder.bias",), copies=(f"{p}.bias",))
    else:
        yield Weight("mlm_head.bias", (f"{p}.bias",), copies=(f"{p}.decoder.bias",))


ARCHITECTURE = Architecture(
    hf_class="BertForMaskedLM", config_class="BertConfig", prefix="bert.", head=f"{PREDICTIONS}.decoder.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    # The pooler and next-sentence head of BertForPreTraining files play no part in MLM logits.
    ignored=(r"^bert\.pooler\.", r"^cls\.seq_relationship\.", r"^bert\.embeddings\.(position|token_type)_ids$"),
    aliases=((f"{PREDICTIONS}.decoder.weight", f"{EMBEDDINGS}.word_embeddings.weight"),),
    # The first BERT files (TensorFlow names) call LayerNorm's scale and shift gamma and beta.
    renames=((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias")),
)
