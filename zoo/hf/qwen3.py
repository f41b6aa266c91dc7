"""``Qwen3ForCausalLM`` <-> zoo ``GPT`` with rotary positions and QK-norm: LLaMA's blocks with an
RMSNorm over each query and key head after the projection and before RoPE (``q_norm`` /
``k_norm`` of ``head_dim``, shared by the heads; zoo ``qk_norm="rmsnorm"``), and optional sliding
windows per layer (``layer_types``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf import _rotary_decoder as decoder
from zoo.hf._common import Architecture, Weight, hf_layer_types, refuse, require, window_layers
from zoo.models import GPTConfig


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``Qwen3Config``."""
    what = "Qwen3 config"
    if hf.attention_bias:
        raise refuse(what, "attention_bias", True, "cannot be expressed: its MLP has no biases and zoo has one "
                     "bias switch")
    fields = decoder.zoo_fields(hf, state, what)
    windows = window_layers(what, getattr(hf, "layer_types", None), hf.sliding_window, hf.num_hidden_layers)
    return {**fields, **windows, "qk_norm": "rmsnorm"}


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``Qwen3Config`` of a zoo one; refuses what Qwen3 cannot express."""
    import transformers

    what = "zoo GPT with QK-norm -> Qwen3ForCausalLM"
    require(what, c, "qk_norm", ("rmsnorm",), "Qwen3 normalises queries and keys with RMSNorm")
    fields = decoder.hf_fields(c, what, switches=("qk_norm", "sliding_window"))
    return transformers.Qwen3Config(
        **fields, attention_bias=False, use_sliding_window=c.sliding_window is not None,
        sliding_window=c.sliding_window, layer_types=hf_layer_types(c),
    )


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``Qwen3ForCausalLM`` tensors: LLaMA's plus ``q_norm`` / ``k_norm``."""
    yield from decoder.weights(c, lambda i: decoder.gated_mlp(f"decoder.layers.{i}.ffn", f"model.layers.{i}.mlp"),
                               qk_norm=True)


ARCHITECTURE = Architecture(
    hf_class="Qwen3ForCausalLM", config_class="Qwen3Config", prefix="model.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=decoder.IGNORED, aliases=decoder.ALIASES,
    export_when={"position": "rotary", "qk_norm": "rmsnorm"},
)
