"""What every architecture module shares: the ``Architecture`` record, weight-table entries and the
one-line refusals of config translation.

An architecture module builds an ``Architecture`` from three functions — the config translated
both ways and a table of ``Weight`` entries — plus the HF tensor names the zoo has no use for.
Nothing here imports ``transformers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo.models.config import TransformerConfig

# Hugging Face activation names (transformers' ACT2FN) -> zoo activations, plain and gated.
PLAIN_ACTIVATIONS = {
    "relu": "relu", "relu2": "relu2", "gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
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


def linear(zoo: str, hf: str | tuple[str, ...], bias: bool, rows: tuple[int, ...] | None = None,
           conv1d: bool = False) -> Iterator[Weight]:
    """The weight (and bias) of a zoo linear layer from one HF layer, or several stacked (``rows``)."""
    names = (hf,) if isinstance(hf, str) else hf
    yield Weight(f"{zoo}.weight", tuple(f"{n}.weight" for n in names), rows, conv1d)
    if bias:
        yield Weight(f"{zoo}.bias", tuple(f"{n}.bias" for n in names), rows, conv1d)


def norm(zoo: str, hf: str, bias: bool) -> Iterator[Weight]:
    """The scale (and shift) of a zoo norm."""
    yield Weight(f"{zoo}.weight", (f"{hf}.weight",))
    if bias:
        yield Weight(f"{zoo}.bias", (f"{hf}.bias",))


def attention_projections(zoo: str, hf: tuple[str, ...], bias: bool, conv1d: bool = False) -> Iterator[Weight]:
    """The zoo attention's own projections from HF layers split the same way, one each: three names
    give ``q_proj``, ``k_proj``, ``v_proj``; two (cross-attention keys and values) ``k_proj``, ``v_proj``."""
    names = ("q_proj", "k_proj", "v_proj")[-len(hf):]
    for name, layer in zip(names, hf, strict=True):
        yield from linear(f"{zoo}.{name}", layer, bias, conv1d=conv1d)


def qkv_rows(c: TransformerConfig) -> tuple[int, int, int]:
    """Widths of the queries, keys and values (rows of a fused HF QKV tensor): h·d, k·d, k·d."""
    q, kv = c.num_heads * c.resolved_head_dim, (c.num_kv_heads or c.num_heads) * c.resolved_head_dim
    return q, kv, kv


# --------------------------------------------------------------------------------------------------
# Refusals and config helpers


def refuse(what: str, field: str, value: Any, why: str) -> ValueError:
    """The one-line error of every refusal: ``what: field=value why``."""
    return ValueError(f"{what}: {field}={value!r} {why}")


def require(what: str, config: TransformerConfig, field: str, allowed: tuple, why: str) -> None:
    """Refuse to export a zoo config whose ``field`` the HF class cannot express."""
    value = getattr(config, field)
    if value not in allowed:
        raise refuse(what, field, value, f"cannot be exported: {why}")


def check_heads(what: str, c: TransformerConfig, gqa: bool) -> None:
    """HF classes derive the head width from ``embed_dim``; only GQA classes take a ``head_dim``."""
    if not gqa:
        require(what, c, "num_kv_heads", (None, c.num_heads), "it has no grouped-query attention")
    if c.embed_dim % c.num_heads:
        raise refuse(what, "num_heads", c.num_heads, f"cannot be exported: it must divide embed_dim={c.embed_dim}")
    if not gqa and c.resolved_head_dim != c.embed_dim // c.num_heads:
        raise refuse(what, "head_dim", c.head_dim, "cannot be exported: it must be embed_dim // num_heads")


# The zoo switches of the modern variants and the value that turns each off: an HF class that lacks
# one must refuse a config that turns it on (``refuse_switches``), or the export would drop it.
SWITCHES_OFF: dict[str, Any] = {
    "qk_norm": "none", "sliding_window": None, "num_experts": None, "residual": "sequential",
    "rotary_fraction": 1.0, "attention_softcap": None, "logit_softcap": None,
}


def refuse_switches(what: str, c: TransformerConfig, supported: tuple[str, ...] = ()) -> None:
    """Refuse to export a zoo config that turns on a switch of ``SWITCHES_OFF`` not in ``supported``."""
    for name, off in SWITCHES_OFF.items():
        if name not in supported and getattr(c, name) != off:
            raise refuse(what, name, getattr(c, name), "cannot be exported: the Hugging Face class has no such option")


def window_layers(what: str, layer_types: Any, sliding_window: int | None, num_layers: int) -> dict[str, Any]:
    """Zoo ``sliding_window`` / ``global_layer_every`` of HF's per-layer ``layer_types``
    (``sliding_attention`` / ``full_attention``): every layer windowed, or every n-th global;
    other patterns are refused."""
    types = list(layer_types) if layer_types else ["full_attention"] * num_layers
    unknown = sorted(set(types) - {"sliding_attention", "full_attention"})
    if unknown or len(types) != num_layers:
        raise refuse(what, "layer_types", types, "must name sliding_attention or full_attention for each layer")
    sliding = [t == "sliding_attention" for t in types]
    if not any(sliding) or sliding_window is None:
        return dict(sliding_window=None)
    if all(sliding):
        return dict(sliding_window=int(sliding_window))
    every = sliding.index(False) + 1
    if sliding != [(i + 1) % every != 0 for i in range(num_layers)]:
        raise refuse(what, "layer_types", types, "is not expressible: zoo windows every layer but each n-th "
                     "(global_layer_every)")
    return dict(sliding_window=int(sliding_window), global_layer_every=every)


def hf_layer_types(c: TransformerConfig) -> list[str]:
    """HF's ``layer_types`` of a zoo config's per-layer windows."""
    return ["full_attention" if c.layer_window(i) is None else "sliding_attention" for i in range(c.num_layers)]


def activation(what: str, field: str, name: Any, table: Mapping[str, str]) -> str:
    """The zoo activation of an HF activation name, refused when the blocks have none."""
    if not isinstance(name, str) or name not in table:
        raise refuse(what, field, name, f"is not supported by the zoo blocks; supported: {sorted(table)}")
    return table[name]


def special_ids(hf: Any) -> dict[str, int]:
    """pad/bos/eos ids that HF sets (it may leave them None, or give a list of eos ids)."""
    ids = {}
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(hf, name, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            ids[name] = int(value)
    return ids


def check_common(what: str, hf: Any) -> None:
    """Options of HF's shared ``PretrainedConfig`` that no zoo model can express."""
    if getattr(hf, "pruned_heads", None):
        raise refuse(what, "pruned_heads", hf.pruned_heads, "cannot be expressed: zoo layers keep every head")
    if getattr(hf, "add_cross_attention", False):
        raise refuse(what, "add_cross_attention", True, "cannot be expressed by a zoo decoder-only/encoder model")


def head_tied(state: Mapping[str, Tensor], head: str, embedding: str, config_tied: bool, what: str) -> bool:
    """HF ties the output head to the embedding when its config says so, except (transformers 5)
    when a checkpoint holds both tensors with different values."""
    if head not in state:
        if config_tied:
            return True
        raise ValueError(f"{what}: missing tensor {head} (the config unties the output head)")
    other = state.get(embedding)
    return bool(config_tied and other is not None and other.shape == state[head].shape
                and torch.equal(other, state[head]))


# --------------------------------------------------------------------------------------------------
# The architecture record


@dataclass(frozen=True)
class Architecture:
    """One Hugging Face head class and how its configs and weights map onto a zoo family.

    Which zoo family (model class, config class, preset) it maps to is not stored here: it comes
    from ``zoo.models.registry``, whose ``Family.hf_classes`` names ``hf_class``.

    Attributes:
        hf_class: The transformers class, e.g. ``GPT2LMHeadModel``.
        config_class: Its transformers config class, which reads ``config.json``.
        prefix: Base-model prefix of the head class's tensor names (``transformer.``); files of
            the bare base model lack it and get it added.
        head: HF name of the output head's weight.
        zoo_config: ``(hf_config, hf_state) -> zoo config fields``, refusing what the zoo cannot
            express. It gives every field the HF config decides; the family's preset fills the rest.
        hf_config: ``zoo_config -> transformers config``, refusing what the class cannot express.
        weights: ``(zoo_config, hf_state or None on export) -> Weight entries``: every tensor of
            both sides, in either direction.
        ignored: Regexes of HF tensors with no zoo counterpart that do not change the logits.
        aliases: ``(alias, original)`` HF names that may repeat another tensor (tied copies):
            accepted only when equal to it.
        renames: ``(regex, replacement)`` applied to HF names on import: old checkpoints' spellings.
        export_when: For a zoo model that several HF classes take (a GPT goes to GPT-2 or LLaMA),
            the config fields that send it here: field -> the value it needs, or a predicate on
            the value whose docstring says what it needs. When several classes match, the one with
            the most conditions wins, so a specialised class (a sliding window) needs no change to
            the general one.
        unfuse: ``(zoo_config, hf_state) -> hf_state`` on import, before the weight table: HF
            tensors that pack several zoo tensors in a way rows cannot slice (Mixtral's stacked
            experts, GPT-NeoX's per-head interleaved QKV) rewritten into the names and layout the
            table uses. None = the state as it is.
        fuse: The inverse of ``unfuse`` on export, after the weight table.
        scales_embedding: The class multiplies token embeddings by sqrt(hidden_size) (Gemma), so it
            takes zoo configs with ``scale_embedding``; other classes refuse them.
    """

    hf_class: str
    config_class: str
    prefix: str
    head: str
    zoo_config: Callable[[Any, Mapping[str, Tensor]], dict[str, Any]]
    hf_config: Callable[[Any], Any]
    weights: Callable[[Any, Mapping[str, Tensor] | None], Iterator[Weight]]
    ignored: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    export_when: Mapping[str, Any] = field(default_factory=dict)
    unfuse: Callable[[Any, dict[str, Tensor]], dict[str, Tensor]] | None = None
    fuse: Callable[[Any, dict[str, Tensor]], dict[str, Tensor]] | None = None
    scales_embedding: bool = False

    def takes(self, config: TransformerConfig) -> bool:
        """Whether a zoo config of the family meets ``export_when``."""
        return all(want(getattr(config, name)) if callable(want) else getattr(config, name) == want
                   for name, want in self.export_when.items())

    def export_needs(self) -> str:
        """``export_when`` in words, for the refusal when no class takes a config."""
        return " and ".join(f"{name} {want.__doc__ or want.__name__}" if callable(want) else f"{name}={want!r}"
                            for name, want in self.export_when.items())
