"""Position-wise feed-forward networks: plain MLPs (relu, relu2, gelu) and gated ones (swiglu, geglu).

Shapes: ``(b, t, d)`` in and out, ``f`` the hidden (ffn) size.
Plain:  ``down_proj(act(up_proj(x)))``.
Gated:  ``down_proj(act(gate_proj(x)) * up_proj(x))`` (Shazeer, 2020, "GLU Variants Improve Transformer").
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

ActivationName = Literal["relu", "relu2", "gelu", "gelu_tanh", "swiglu", "geglu", "geglu_tanh"]


class ReLUSquared(nn.Module):
    """``relu(x)²`` (So et al., 2021, "Primer"; the modded-nanogpt speedrun's MLP activation)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x).square()


# name -> (activation factory, gated?)
ACTIVATIONS: dict[str, tuple[type[nn.Module] | object, bool]] = {
    "relu": (nn.ReLU, False),
    "relu2": (ReLUSquared, False),
    "gelu": (nn.GELU, False),
    # GPT-2's "gelu_new": the tanh approximation of GELU.
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), False),
    "swiglu": (nn.SiLU, True),
    "geglu": (nn.GELU, True),
    # T5 v1.1's "gated-gelu" uses the tanh approximation.
    "geglu_tanh": (lambda: nn.GELU(approximate="tanh"), True),
}


def default_ffn_dim(embed_dim: int, activation: str) -> int:
    """4·d for plain MLPs; for gated ones ⅔ of that (rounded up to a multiple of 8), which keeps
    the parameter count of the three gated matrices equal to the two plain ones (LLaMA's rule)."""
    if ACTIVATIONS[activation][1]:
        return 8 * ((2 * 4 * embed_dim // 3 + 7) // 8)
    return 4 * embed_dim


class FeedForward(nn.Module):
    """Feed-forward block with a plain or gated activation.

    Args:
        embed_dim: Model width ``d``.
        ffn_dim: Hidden width ``f``.
        activation: One of ``ACTIVATIONS``.
        bias: Whether the linear layers have biases.
    """

    def __init__(self, embed_dim: int, ffn_dim: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r} is not a known activation; choose one of {sorted(ACTIVATIONS)}"
            )
        make_act, gated = ACTIVATIONS[activation]
        self.act = make_act()
        self.gate_proj = nn.Linear(embed_dim, ffn_dim, bias=bias) if gated else None
        self.up_proj = nn.Linear(embed_dim, ffn_dim, bias=bias)
        self.down_proj = nn.Linear(ffn_dim, embed_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_proj is None:
            return self.down_proj(self.act(self.up_proj(x)))
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
