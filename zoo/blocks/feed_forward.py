"""Position-wise feed-forward networks: plain MLPs (relu, relu2, gelu) and gated ones (swiglu, geglu).

Shapes: ``(b, t, d)`` in and out, ``f`` the hidden (ffn) size.
Plain:  ``down_proj(act(up_proj(x)))``.
Gated:  ``down_proj(act(gate_proj(x)) * up_proj(x))`` (Shazeer, 2020, "GLU Variants Improve Transformer").
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

ActivationName = Literal["relu", "relu2", "gelu", "gelu_tanh", "swiglu", "geglu", "geglu_tanh"]


def _compiling_on_cpu(x: Tensor) -> bool:
    return x.device.type == "cpu" and torch.compiler.is_compiling()


class _ReLU(torch.autograd.Function):
    """``relu(x)`` whose backward is ``grad · sign(relu(x))`` — 0 or 1, ``relu``'s derivative —
    instead of a boolean mask: inside ``torch.compile`` on a CPU, the comparison / boolean-mask
    kernels inductor writes for ``threshold_backward`` made a ReLU's forward + backward on a
    (1024, 1024) tensor take 9.5–15 ms (bf16, fp32) against 0.7 ms eager; the sign form 0.9–1.3 ms."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = torch.relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return grad * out.sign()


class _ReLUSquared(torch.autograd.Function):
    """``relu(x)²`` with the backward ``2·relu(x)·grad`` (no mask needed: it is 0 where ``x < 0``)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = torch.relu(x)
        ctx.save_for_backward(out)
        return out.square()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return 2 * out * grad


class ReLU(nn.ReLU):
    """``nn.ReLU``; inside ``torch.compile`` on a CPU with a mask-free backward (``_ReLU``), which
    made T5's compiled training step faster than its eager one instead of slower."""

    def forward(self, x: Tensor) -> Tensor:
        if _compiling_on_cpu(x) and x.requires_grad:
            return _ReLU.apply(x)
        return super().forward(x)


class ReLUSquared(nn.Module):
    """``relu(x)²`` (So et al., 2021, "Primer"; the modded-nanogpt speedrun's MLP activation);
    inside ``torch.compile`` on a CPU with a mask-free backward, as ``ReLU``."""

    def forward(self, x: Tensor) -> Tensor:
        if _compiling_on_cpu(x) and x.requires_grad:
            return _ReLUSquared.apply(x)
        return torch.relu(x).square()


# 2·√(2/π): the tanh approximation's inner scale, doubled for the sigmoid form.
_TANH_GELU_SIGMOID_SCALE = 2 * math.sqrt(2 / math.pi)


class GELU(nn.GELU):
    """``nn.GELU`` (same arguments, same function), with a faster compiled form of the tanh
    approximation on CPUs.

    ``½x(1 + tanh z)`` equals ``x·σ(2z)`` (since ``½(1 + tanh z) = σ(2z)``), and on a CPU
    ``torch.compile`` vectorises the sigmoid's ``exp`` well and ``tanh`` poorly: inside a compiled
    bf16 GPT-2-shaped training step (width 256, 4 layers, 1024 tokens) the GELU kernels took 18.4 ms
    a step in the tanh form and 8.6 ms in the sigmoid form (torch.profiler with inductor's kernel
    profile; ``benchmarks/training.py`` measures the whole step). So that form is used on CPUs
    inside ``torch.compile`` (in float32, rounded once to the input's dtype); eager and GPUs keep
    ``F.gelu``'s own kernel."""

    def forward(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh" and _compiling_on_cpu(x):
            wide = x.float()
            inner = _TANH_GELU_SIGMOID_SCALE * (wide + 0.044715 * wide * wide * wide)
            return (wide * torch.sigmoid(inner)).to(x.dtype)
        return super().forward(x)


# name -> (activation factory, gated?)
ACTIVATIONS: dict[str, tuple[type[nn.Module] | object, bool]] = {
    "relu": (ReLU, False),
    "relu2": (ReLUSquared, False),
    "gelu": (GELU, False),
    # GPT-2's "gelu_new": the tanh approximation of GELU.
    "gelu_tanh": (lambda: GELU(approximate="tanh"), False),
    "swiglu": (nn.SiLU, True),
    "geglu": (GELU, True),
    # T5 v1.1's "gated-gelu" uses the tanh approximation.
    "geglu_tanh": (lambda: GELU(approximate="tanh"), True),
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
