"""Position schemes: none, learned, sinusoidal, rotary (RoPE), ALiBi and T5 relative bias.

They enter the model in three different places — each module's ``kind`` says which, and
``TransformerStack`` routes it:
- ``absolute`` (``learned``, ``sinusoidal``): a ``(b, t, d)`` vector added to the token embeddings;
- ``rotary``: ``(cos, sin)`` that rotate queries and keys inside attention;
- ``bias`` (``alibi``, ``relative``): a float ``(b, h, t, s)`` added to the attention scores.
Which module a config name builds is ``zoo.models.builders.POSITION_BUILDERS``.

Shapes: b batch (or 1 when positions are shared), t query len, s key len, h heads, d dims.
Positions are integer tensors ``(b, t)``: absolute indices, so a KV cache or left padding only
changes which numbers are passed in.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, get_args

import torch
from torch import Tensor, nn

PositionName = Literal["none", "learned", "sinusoidal", "rotary", "alibi", "relative"]
POSITIONS: tuple[str, ...] = get_args(PositionName)
PositionKind = Literal["absolute", "rotary", "bias"]


def check_learned_length(length: int, max_seq_len: int, what: str = "sequence length") -> None:
    """The one check that ``length`` positions fit a learned table of ``max_seq_len``."""
    if length > max_seq_len:
        raise ValueError(
            f"{what} {length} exceeds max_seq_len={max_seq_len} of the learned position table; "
            "raise max_seq_len or feed shorter sequences"
        )


class LearnedPositions(nn.Module):
    """A learned table of ``max_seq_len`` absolute position vectors (BERT, GPT-2)."""

    kind: ClassVar[PositionKind] = "absolute"

    def __init__(self, max_seq_len: int, embed_dim: int):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.embedding = nn.Embedding(max_seq_len, embed_dim)

    def forward(self, position_ids: Tensor) -> Tensor:
        return self.embedding(position_ids)  # (b, t, d)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoids of Vaswani et al. (2017): ``PE[p, 2i] = sin(p / 10000^(2i/d))``, cos at ``2i+1``."""

    kind: ClassVar[PositionKind] = "absolute"

    def __init__(self, embed_dim: int, base: float = 10000.0):
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"sinusoidal positions need an even embed_dim, got {embed_dim}")
        inv_freq = base ** (-torch.arange(0, embed_dim, 2, dtype=torch.float) / embed_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: Tensor) -> Tensor:
        angles = position_ids[..., None].float() * self.inv_freq  # (b, t, d/2)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (b, t, d)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., 2021) in the "rotate half" layout of GPT-NeoX and LLaMA:
    dimension ``i`` pairs with ``i + r/2``. Scores then depend only on relative offsets.

    Args:
        head_dim: Dimensions ``r`` that rotate: the whole head, or its first ``r`` dimensions
            (partial rotary, GPT-NeoX's ``rotary_pct``); the rest pass through unrotated.
        base: Frequency base; dimension pair ``i`` turns at ``base^(-2i/r)`` radians per position.
    """

    kind: ClassVar[PositionKind] = "rotary"

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2 or head_dim < 2:
            raise ValueError(f"rotary positions need an even head_dim (rotated dimensions), got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        angles = position_ids[..., None].float() * self.inv_freq  # (b, t, r/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (b, 1, t, r)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` of shape ``(b, h, t, d)`` by the angles behind ``cos``/``sin`` ``(b, 1, t, r)``:
    its first ``r`` dimensions (all of them unless the rotary is partial)."""
    r = cos.shape[-1]
    if r < x.shape[-1]:
        rotary, passed = x.split_with_sizes([r, x.shape[-1] - r], dim=-1)
        return torch.cat((apply_rotary(rotary, cos, sin), passed), dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def alibi_slopes(num_heads: int) -> Tensor:
    """Head slopes of ALiBi (Press et al., 2022): a geometric sequence starting at ``2^(-8/n)``;
    for a head count that is not a power of two, the odd-indexed slopes of the next power fill in."""
    def powers(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = powers(closest)
    if closest < num_heads:
        slopes += powers(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes)


class ALiBi(nn.Module):
    """Attention with Linear Biases: score bias ``-slope_h · |i - j|``; no position parameters."""

    kind: ClassVar[PositionKind] = "bias"

    def __init__(self, num_heads: int):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        distance = (q_pos[:, :, None] - k_pos[:, None, :]).abs()  # (b, t, s)
        return -self.slopes[None, :, None, None] * distance[:, None].float()  # (b, h, t, s)


def t5_relative_bucket(
    relative_position: Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> Tensor:
    """Map signed offsets ``key - query`` to buckets (Raffel et al., 2020, §2.1): exact buckets for
    small offsets, logarithmic ones up to ``max_distance``, and a shared last bucket beyond."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # a causal decoder only looks back
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class T5RelativeBias(nn.Module):
    """T5's learned, bucketed relative position bias: one scalar per (bucket, head)."""

    kind: ClassVar[PositionKind] = "bias"

    def __init__(self, num_heads: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        relative = k_pos[:, None, :] - q_pos[:, :, None]  # (b, t, s)
        buckets = t5_relative_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(0, 3, 1, 2)  # (b, h, t, s)
