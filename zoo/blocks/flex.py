"""Biased and masked attention without an S×S float tensor: FlexAttention (``torch.nn.attention.
flex_attention``), with SDPA as the fallback.

The dense path folds ALiBi, T5's relative bias, causality + padding, sliding windows and document
masks into one ``(b, h, t, s)`` float (or bool) tensor that every layer reads. Here the same
structure is two small functions evaluated inside the attention kernel:

- a ``score_mod(score, b, h, q, k)`` adds the position bias: ``-slope_h·|q - k|`` (ALiBi) or one
  learned scalar per (head, clamped offset) (T5, whose buckets saturate beyond ``max_distance``, so a
  table of ``2·max_distance + 1`` offsets per head is exact);
- a ``mask_mod(b, h, q, k)`` says which keys a query may see (causal, padding, window, same document),
  compiled into a ``BlockMask`` that also lets the kernel skip blocks that are masked throughout.

Where FlexAttention runs: any device for inference; for training it needs a backward, which this
torch has on CUDA but not on CPU (``flex_backward_supported``). ``TransformerStack`` asks
``use_flex`` once per forward and otherwise prepares the dense mask for SDPA as before, so the
dense path stays the reference the tests compare against. Attention dropout has no FlexAttention
form: training with it falls back too.

Shapes: b batch, h heads, t query len, s key len; queries are the last ``t`` of ``s`` positions.
Positions ``(b or 1, t)`` / ``(b or 1, s)`` as in ``zoo.blocks.positions``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.blocks.positions import ALiBi, T5RelativeBias, t5_relative_bucket
from zoo.blocks.sdpa import sdpa_attention

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch: the dense path everywhere
    BlockMask = create_block_mask = flex_attention = None

# Fused kernels (compiled FlexAttention and block masks). The tests switch this off to check the
# score and mask functions against the dense path through FlexAttention's eager reference, which
# gives the same numbers without minutes of kernel compilation on a CPU.
COMPILE_KERNELS = True

ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def flex_available() -> bool:
    """Whether this torch has FlexAttention at all."""
    return flex_attention is not None


def flex_backward_supported(device: torch.device) -> bool:
    """FlexAttention's backward exists on CUDA; on CPU this torch raises NotImplementedError."""
    return device.type == "cuda"


@dataclass
class FlexMask:
    """What a stack hands its layers instead of a dense mask: a score modifier and a block mask
    (either may be None), consumed by ``flex_attention_function``."""

    score_mod: ScoreMod | None
    block_mask: BlockMask | None


def use_flex(device: torch.device, *, training: bool, dropout: float) -> bool:
    """Whether a forward on ``device`` can take FlexAttention: it exists, needs no backward it
    lacks, and no attention dropout is asked for."""
    if not flex_available():
        return False
    if torch.is_grad_enabled() and not flex_backward_supported(device):
        return False
    return not (training and dropout > 0)


# ---------------------------------------------------------------------------------------------
# Position biases as score modifiers


def _offsets(q_pos: Tensor | None, k_pos: Tensor | None, offset: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``key position - query position`` for kernel indices ``(b, q, k)``. Without explicit
    positions they are the indices themselves (queries start at ``offset``), which needs no lookup."""
    if q_pos is None or k_pos is None:
        return lambda b, q, k: k - (q + offset)
    return lambda b, q, k: k_pos[b, k] - q_pos[b, q]


def alibi_score_mod(module: ALiBi, q_pos: Tensor | None, k_pos: Tensor | None, offset: int) -> ScoreMod:
    """ALiBi's ``-slope_h · |q - k|`` added to each score."""
    slopes, relative = module.slopes, _offsets(q_pos, k_pos, offset)

    def score_mod(score: Tensor, b: Tensor, h: Tensor, q: Tensor, k: Tensor) -> Tensor:
        return score - slopes[h] * relative(b, q, k).abs()

    return score_mod


def t5_bias_table(module: T5RelativeBias) -> Tensor:
    """``(h, 2M + 1)`` bias of every offset ``-M..M`` (``M = max_distance``); beyond ``M`` the
    buckets no longer change, so clamping an offset to ``±M`` gives its exact bias. Built from the
    embedding each forward, so gradients reach it."""
    m = module.max_distance
    offsets = torch.arange(-m, m + 1, device=module.embedding.weight.device)
    buckets = t5_relative_bucket(offsets, module.bidirectional, module.num_buckets, module.max_distance)
    return module.embedding(buckets).transpose(0, 1)  # (h, 2M + 1)


def t5_dense_bias(module: T5RelativeBias, t: int, s: int) -> Tensor:
    """T5's dense ``(1, h, t, s)`` bias for the default positions (queries the last ``t`` of ``s``),
    equal to ``module(q_pos, k_pos)``: with positions ``0..s-1`` the bias is constant along each
    diagonal, so it is one row of ``s + t - 1`` offsets, looked up once, laid out by ``unfold``.

    The module's own forward looks up all ``t·s`` buckets, and its embedding backward sorts those
    ``t·s`` indices: at sequence 512 that was 4 % of a T5 training step (torch.profiler); here the
    lookup and its backward are over ``s + t - 1`` indices, and ``unfold``'s backward sums diagonals.
    """
    relative = torch.arange(-(s - 1), t, device=module.embedding.weight.device)  # key - query, lowest first
    buckets = t5_relative_bucket(relative, module.bidirectional, module.num_buckets, module.max_distance)
    row = module.embedding(buckets).transpose(0, 1)  # (h, s + t - 1)
    # windows[h, i, j] = row[h, i + j]; query i (position s - t + i) and key j need row[h, j - i + t - 1].
    return row.unfold(1, s, 1).flip(1)[None]  # (1, h, t, s)


def t5_score_mod(module: T5RelativeBias, q_pos: Tensor | None, k_pos: Tensor | None, offset: int) -> ScoreMod:
    """T5's learned relative bias added to each score, read from ``t5_bias_table``."""
    table, m, relative = t5_bias_table(module), module.max_distance, _offsets(q_pos, k_pos, offset)

    def score_mod(score: Tensor, b: Tensor, h: Tensor, q: Tensor, k: Tensor) -> Tensor:
        return score + table[h, relative(b, q, k).clamp(-m, m) + m].to(score.dtype)

    return score_mod


def bias_score_mod(module: nn.Module, q_pos: Tensor | None, k_pos: Tensor | None, offset: int) -> ScoreMod:
    """The score modifier of a ``bias``-kind position module (``ALiBi`` or ``T5RelativeBias``)."""
    if isinstance(module, ALiBi):
        return alibi_score_mod(module, q_pos, k_pos, offset)
    if isinstance(module, T5RelativeBias):
        return t5_score_mod(module, q_pos, k_pos, offset)
    raise TypeError(f"no FlexAttention score_mod for {type(module).__name__}")


def has_score_mod(module: nn.Module | None) -> bool:
    return isinstance(module, (ALiBi, T5RelativeBias))


# ---------------------------------------------------------------------------------------------
# Masks as block masks


def mask_mod_for(
    t: int, s: int, *, causal: bool, key_mask: Tensor | None = None, window: int | None = None,
    document_ids: Tensor | None = None,
) -> MaskMod | None:
    """The ``mask_mod`` of: causality, a ``(b, s)`` key mask (True = real token), a sliding
    ``window`` (as ``zoo.blocks.masks.sliding_window_mask``) and ``(b, s)`` document ids (a query
    sees only keys of its own document); None when nothing is masked."""
    offset = s - t
    rules: list[MaskMod] = []
    if causal:
        rules.append(lambda b, h, q, k: q + offset >= k)
    if window is not None and window < s:
        if causal:
            rules.append(lambda b, h, q, k: q + offset - k < window)
        else:
            rules.append(lambda b, h, q, k: (q + offset - k).abs() < window)
    if key_mask is not None:
        rules.append(lambda b, h, q, k: key_mask[b, k])
    if document_ids is not None:
        rules.append(lambda b, h, q, k: document_ids[b, q + offset] == document_ids[b, k])
    if not rules:
        return None

    def mask_mod(b: Tensor, h: Tensor, q: Tensor, k: Tensor) -> Tensor:
        keep = rules[0](b, h, q, k)
        for rule in rules[1:]:
            keep = keep & rule(b, h, q, k)
        return keep

    return mask_mod


def block_mask_for(mask_mod: MaskMod | None, batch: int | None, t: int, s: int, device: torch.device
                   ) -> BlockMask | None:
    """``create_block_mask`` over ``(batch or broadcast, heads broadcast, t, s)``. Compiled outside
    ``torch.compile`` (otherwise it evaluates ``mask_mod`` into a full ``t × s`` bool tensor first)."""
    if mask_mod is None:
        return None
    return create_block_mask(mask_mod, batch, None, t, s, device=device,
                             _compile=COMPILE_KERNELS and not torch.compiler.is_compiling())


def flex_mask(
    t: int,
    s: int,
    device: torch.device,
    *,
    causal: bool,
    positions: nn.Module | None = None,
    q_pos: Tensor | None = None,
    k_pos: Tensor | None = None,
    key_mask: Tensor | None = None,
    window: int | None = None,
    document_ids: Tensor | None = None,
) -> FlexMask:
    """Everything a stack's layers need to attend through FlexAttention.

    Args:
        t, s: Query and key lengths; queries are the last ``t`` keys.
        causal: No query sees a later key.
        positions: The stack's ``bias``-kind position module, if any.
        q_pos, k_pos: Explicit positions ``(b or 1, t)`` / ``(b or 1, s)``; None = ``s - t + arange(t)``
            and ``arange(s)``.
        key_mask: ``(b, s)`` bool, True = real token.
        window: Sliding window, as in ``MultiHeadAttention``.
        document_ids: ``(b, s)`` document of each key (packed sequences).
    """
    batch = None
    for tensor in (key_mask, document_ids, q_pos, k_pos):
        if tensor is not None and tensor.shape[0] > 1:
            batch = tensor.shape[0]
    if batch is not None:  # kernels index with the batch index: give every row its own entry
        q_pos = q_pos.expand(batch, -1) if q_pos is not None else None
        k_pos = k_pos.expand(batch, -1) if k_pos is not None else None
    score_mod = bias_score_mod(positions, q_pos, k_pos, s - t) if positions is not None else None
    mask_mod = mask_mod_for(t, s, causal=causal, key_mask=key_mask, window=window, document_ids=document_ids)
    return FlexMask(score_mod, block_mask_for(mask_mod, batch, t, s, device))


# ---------------------------------------------------------------------------------------------
# The attention function


@functools.cache
def _compiled_flex() -> Callable[..., Tensor]:
    # Called eagerly, flex_attention runs an unfused reference that materialises the scores;
    # compiled, it is one fused kernel. Inside a compiled stack this wrapper is traced through.
    return torch.compile(flex_attention, dynamic=False)


def flex_attention_function(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | FlexMask | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``F.scaled_dot_product_attention``'s signature; a ``FlexMask`` goes through FlexAttention,
    anything else (a dense mask, a cross-attention padding mask, a decoding step) through
    ``zoo.blocks.sdpa.sdpa_attention``."""
    if not isinstance(attn_mask, FlexMask):
        return sdpa_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                              enable_gqa=enable_gqa)
    if dropout_p > 0:
        raise ValueError("FlexAttention has no attention dropout; the stack should have prepared a dense mask")
    attend = flex_attention if torch.compiler.is_compiling() or not COMPILE_KERNELS else _compiled_flex()
    return attend(q, k, v, score_mod=attn_mask.score_mod, block_mask=attn_mask.block_mask, scale=scale,
                  enable_gqa=enable_gqa)


def document_ids(input_ids: Tensor, eos_token_id: int) -> Tensor:
    """Document index of each token of packed blocks ``(b, t)`` whose documents end with
    ``eos_token_id`` (as ``zoo.data`` packs them): the eos belongs to the document it ends."""
    ends = input_ids == eos_token_id
    return ends.long().cumsum(dim=-1) - ends.long()  # (b, t)


def stack_flex_masks(
    stack: nn.Module,
    t: int,
    s: int,
    device: torch.device,
    *,
    attention_mask: Tensor | None,
    position_ids: Tensor | None,
    key_positions: Tensor | None,
    document_ids: Tensor | None,
    cached: bool,
) -> dict[int | None, tuple[FlexMask, bool]] | None:
    """The per-window masks of a ``TransformerStack`` as ``FlexMask``s, or None where the dense
    path is the one to take: a layer that does not attend through ``flex_attention_function``, a
    decoding step (one query: its dense mask is one row), a sliding-window cache (it holds fewer
    keys than positions), a forward FlexAttention cannot run (``use_flex``), or nothing that would
    need an S×S tensor — plain causal or padding-only attention stays on SDPA's own fast paths.

    Args:
        stack: The stack (its ``layers``, ``windows``, ``causal``, ``position_bias``, ``training``).
        t, s: New tokens and all keys (cache included).
        attention_mask: ``(b, s)`` bool, True = real token.
        position_ids, key_positions: As the stack passes them to its position module; None =
            the default ``arange`` positions, which need no lookup in the kernel.
        document_ids: ``(b, s)`` document of each key.
        cached: The stack runs with a KV cache.
    """
    layers = list(stack.layers)
    if t == 1 or not layers or any(layer.self_attn.attention_fn is not flex_attention_function for layer in layers):
        return None
    windows = list(dict.fromkeys(stack.windows))
    if cached and any(window is not None for window in windows):
        return None
    bias = stack.position_bias
    if bias is not None and not has_score_mod(bias):
        return None
    needs_dense = (bias is not None or document_ids is not None or (stack.causal and attention_mask is not None)
                   or any(window is not None and window < s for window in windows))
    dropout = max(layer.self_attn.dropout for layer in layers)
    if not needs_dense or not use_flex(device, training=stack.training, dropout=dropout):
        return None
    key_mask = attention_mask.bool() if attention_mask is not None else None
    return {window: (flex_mask(t, s, device, causal=stack.causal, positions=bias, q_pos=position_ids,
                               k_pos=key_positions, key_mask=key_mask, window=window,
                               document_ids=document_ids), False)
            for window in windows}


def dense_document_mask(document_ids: Tensor, t: int) -> Tensor:
    """``(b, 1, t, s)`` bool: the last ``t`` of ``s`` positions see only keys of their own document
    (the dense form of the document ``mask_mod``)."""
    return (document_ids[:, -t:, None] == document_ids[:, None, :])[:, None]
