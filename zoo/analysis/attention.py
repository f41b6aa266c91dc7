"""Attention weights out of any zoo model, for plotting and measuring — with the fused SDPA path on.

``F.scaled_dot_product_attention`` never materialises the weights, so ``capture_attention`` wraps
each ``MultiHeadAttention``'s kernel for the duration of a ``with`` block: the wrapper recomputes
``softmax(QKᵀ·scale + mask)`` from the very queries, keys and mask the kernel receives (rotary
already applied, position bias and padding folded in), records it, then calls the kernel
unchanged. The model's outputs do not change; nothing in ``zoo.blocks`` knows about it.

Shapes: b batch, h query heads, k key/value heads, t query len, s key len, d head dim.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.softcap import softcap as softcap_scores


def attention_weights(
    q: Tensor,
    k: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    softcap: float | None = None,
) -> Tensor:
    """``softmax(QKᵀ·scale + mask)`` as ``F.scaled_dot_product_attention`` computes it, ``(b, h, t, s)``.

    Arguments as in SDPA: ``q`` ``(b, h, t, d)``, ``k`` ``(b, k, s, d)``; a bool ``attn_mask`` is
    True where a query may attend, a float one is added to the scores. ``softcap`` caps the scaled
    scores before the mask, as ``eager_attention`` does. Weights come back in float32.
    """
    t, s = q.shape[-2], k.shape[-2]
    if enable_gqa and k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # (b, h, s, d)
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = softcap_scores((q.float() @ k.float().transpose(-2, -1)) * scale, softcap)  # (b, h, t, s)
    if is_causal:
        # SDPA's own causal mask is top-left aligned; MultiHeadAttention asks for it only when t == s.
        scores = scores.masked_fill(~torch.ones(t, s, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.float()
    return scores.softmax(dim=-1)


class AttentionMaps:
    """What ``capture_attention`` recorded: per attention module (named by its path in the model,
    e.g. ``decoder.layers.0.self_attn``), the weights of every call, in call order."""

    def __init__(self) -> None:
        self.calls: dict[str, list[Tensor]] = {}

    @property
    def names(self) -> list[str]:
        """Module names in the order they first ran."""
        return list(self.calls)

    def __getitem__(self, name: str) -> Tensor:
        """The weights ``(b, h, t, s)`` of the last call of module ``name``."""
        if name not in self.calls:
            raise KeyError(f"no attention recorded for {name!r}; recorded: {self.names}")
        return self.calls[name][-1]

    def __len__(self) -> int:
        return len(self.calls)

    def layers(self, suffix: str = "self_attn", prefix: str = "") -> Tensor:
        """The last call's weights of every module whose name starts with ``prefix`` and ends with
        ``suffix`` (e.g. ``prefix="encoder."``), stacked in layer order: ``(layers, b, h, t, s)``."""
        chosen = [n for n in self.names if n.startswith(prefix) and n.endswith(suffix)]
        if not chosen:
            raise KeyError(f"no attention module matches prefix={prefix!r}, suffix={suffix!r}; recorded: {self.names}")
        return torch.stack([self[n] for n in chosen])


def _recording(kernel: Callable[..., Tensor], store: list[Tensor], softcap: float | None) -> Callable[..., Tensor]:
    def kernel_and_record(
        q: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> Tensor:
        with torch.no_grad():
            store.append(attention_weights(q, k, attn_mask, is_causal, scale, enable_gqa, softcap).detach().cpu())
        return kernel(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                      enable_gqa=enable_gqa)

    return kernel_and_record


@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[AttentionMaps]:
    """Record the attention weights of every ``MultiHeadAttention`` in ``model`` inside the block.

    Works for every family (encoder self-attention, decoder causal self-attention, cross-attention),
    every position scheme, sliding windows and softcapped scores, with either ``attn_implementation``.
    Weights are the softmax probabilities before attention dropout, on the CPU in float32.

    Example::

        with capture_attention(model) as maps:
            model(input_ids)
        maps["decoder.layers.0.self_attn"]      # (b, h, t, s)
        maps.layers(prefix="decoder.")           # (layers, b, h, t, s)
    """
    maps = AttentionMaps()
    patched = []
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            kernel = module.attention_fn
            softcap = getattr(module, "softcap", None)  # a softcapped module's kernel is eager with the cap bound
            module.attention_fn = _recording(kernel, maps.calls.setdefault(name, []), softcap)
            patched.append((module, kernel))
    if not patched:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention module to capture")
    try:
        yield maps
    finally:
        for module, kernel in patched:
            module.attention_fn = kernel
        maps.calls = {name: calls for name, calls in maps.calls.items() if calls}  # drop modules that never ran


def attention_entropy(weights: Tensor, eps: float = 1e-12) -> Tensor:
    """Entropy in nats of each attention row, ``-Σ_s p·log p``: ``(..., t)`` from ``(..., t, s)``.

    Uniform attention over ``n`` keys has entropy ``ln n``; a one-hot (saturated) row has 0.
    """
    return -(weights * (weights + eps).log()).sum(dim=-1)

