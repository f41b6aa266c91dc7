"""``MixtralForCausalLM`` <-> zoo ``GPT`` with rotary positions and a mixture of experts: LLaMA's
blocks with each feed-forward replaced by ``num_local_experts`` gated experts behind a top-k router
(softmax over experts, top ``num_experts_per_tok``, renormalised), and an optional sliding window.

Tensor layout: transformers 5 stacks the experts of a layer into ``mlp.experts.gate_up_proj``
``(E, 2f, e)`` and ``mlp.experts.down_proj`` ``(E, e, f)``, and writes files in the original
per-expert layout, ``block_sparse_moe.experts.<j>.w1`` (gate), ``w3`` (up) and ``w2`` (down). The
weight table names the per-expert layout, so files load as they are; ``unfuse``/``fuse`` convert
a model's own state dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from zoo.hf import _rotary_decoder as decoder
from zoo.hf._common import Architecture, Weight, linear, refuse, require
from zoo.models import GPTConfig

_EXPERT_NAMES = (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2"))


def zoo_config(hf: Any, state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Zoo ``GPTConfig`` fields of a transformers ``MixtralConfig``."""
    what = "Mixtral config"
    if hf.router_jitter_noise:
        raise refuse(what, "router_jitter_noise", hf.router_jitter_noise, "is not supported: zoo routers take "
                     "their input unchanged")
    if hf.num_experts_per_tok == 1:
        raise refuse(what, "num_experts_per_tok", 1, "is not supported: Mixtral's renormalised top-1 weight is "
                     "always 1, zoo's top-1 keeps the router probability (Switch Transformer)")
    fields = decoder.zoo_fields(hf, state, what)
    return {**fields, "sliding_window": hf.sliding_window, "num_experts": hf.num_local_experts,
            "experts_per_token": hf.num_experts_per_tok, "moe_aux_loss_weight": float(hf.router_aux_loss_coef)}


def hf_config(c: GPTConfig) -> Any:
    """The transformers ``MixtralConfig`` of a zoo one; refuses what Mixtral cannot express."""
    import transformers

    what = "zoo GPT with experts -> MixtralForCausalLM"
    require(what, c, "global_layer_every", (None,), "Mixtral windows every layer")
    if c.experts_per_token == 1:
        raise refuse(what, "experts_per_token", 1, "cannot be exported: Mixtral renormalises the top-1 weight to 1")
    fields = decoder.hf_fields(c, what, switches=("sliding_window", "num_experts"))
    return transformers.MixtralConfig(
        **fields, sliding_window=c.sliding_window, num_local_experts=c.num_experts,
        num_experts_per_tok=c.experts_per_token, router_aux_loss_coef=c.moe_aux_loss_weight,
    )


def _experts(c: GPTConfig, i: int) -> Iterator[Weight]:
    zoo, hf = f"decoder.layers.{i}.ffn", f"model.layers.{i}.block_sparse_moe"
    yield Weight(f"{zoo}.router.weight", (f"{hf}.gate.weight",))
    for j in range(c.num_experts):
        for zoo_name, hf_name in _EXPERT_NAMES:
            yield from linear(f"{zoo}.experts.{j}.{zoo_name}", f"{hf}.experts.{j}.{hf_name}", False)


def weights(c: GPTConfig, state: Mapping[str, Tensor] | None) -> Iterator[Weight]:
    """Zoo ``GPT`` tensors <-> Mixtral's per-expert tensors (the layout of its files)."""
    yield from decoder.weights(c, lambda i: _experts(c, i))


def unfuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """transformers 5's stacked experts -> the per-expert names of Mixtral's files."""
    out = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"(model\.layers\.\d+)\.mlp\.(gate\.weight|experts\.gate_up_proj|experts\.down_proj)", key)
        if match is None:
            out[key] = tensor
            continue
        layer, what = match.groups()
        moe = f"{layer}.block_sparse_moe"
        if what == "gate.weight":
            out[f"{moe}.gate.weight"] = tensor
        elif what == "experts.down_proj":
            for j, expert in enumerate(tensor):
                out[f"{moe}.experts.{j}.w2.weight"] = expert
        else:  # gate_up_proj: (E, 2f, e), gate rows first
            for j, expert in enumerate(tensor):
                gate, up = expert.chunk(2, dim=0)
                out[f"{moe}.experts.{j}.w1.weight"], out[f"{moe}.experts.{j}.w3.weight"] = gate, up
    return out


def fuse(c: GPTConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Mixtral's per-expert names -> transformers 5's stacked experts (the model's own parameters)."""
    out = {k: v for k, v in state.items() if ".block_sparse_moe." not in k}
    for i in range(c.num_layers):
        moe, mlp = f"model.layers.{i}.block_sparse_moe", f"model.layers.{i}.mlp"
        experts = [f"{moe}.experts.{j}" for j in range(c.num_experts)]
        out[f"{mlp}.gate.weight"] = state[f"{moe}.gate.weight"]
        out[f"{mlp}.experts.gate_up_proj"] = torch.stack(
            [torch.cat((state[f"{e}.w1.weight"], state[f"{e}.w3.weight"])) for e in experts])
        out[f"{mlp}.experts.down_proj"] = torch.stack([state[f"{e}.w2.weight"] for e in experts])
    return out


ARCHITECTURE = Architecture(
    hf_class="MixtralForCausalLM", config_class="MixtralConfig", prefix="model.", head="lm_head.weight",
    zoo_config=zoo_config, hf_config=hf_config, weights=weights,
    ignored=decoder.IGNORED, aliases=decoder.ALIASES,
    export_when={"position": "rotary", "num_experts": decoder.is_set},
    unfuse=unfuse, fuse=fuse,
)
