"""``MistralForCausalLM`` <-> zoo ``GPT`` with rotary positions and a sliding window: LLaMA's
blocks (RMSNorm, gated MLP, GQA, no biases) with every layer attending to itself and the
``sliding_window - 1`` tokens before it (``sliding_window=None``: global, as LLaMA)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from zoo.hf import _rotary_decoder as decoder
from zoo.hf._common import Architecture, Weight, require
from zoo.models import GPTConfig


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``MistralConfig``."""
    fields = decoder.zoo_fields(hf, state, "Mistral config")
    return {**fields, "sliding_window": hf.sliding_window}


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``MistralConfig`` of a zoo one; refuses what Mistral cannot express."""
    import transformers

    what = "zoo GPT with a sliding window -> MistralForCausalLM"
    require(what, c, "global_layer_every", (None,), "Mistral windows every layer")
    fields = decoder.hf_fields(c, what, switches=("sliding_window",))
    return transformers.MistralConfig(**fields, sliding_window=c.sliding_window)


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> ``MistralForCausalLM`` tensors (LLaMA's names)."""
    yield from decoder.weights(c, lambda i: decoder.gated_mlp(f"decoder.layers.{i}.ffn", f"model.layers.{i}.mlp"))


ARCHITECTURE = Architecture(
    hf_class="MistralForCausalLM", config_class="MistralConfig", prefix="model.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=decoder.IGNORED, aliases=decoder.ALIASES,
    export_when={"position": "rotary", "sliding_window": decoder.is_set},
)
