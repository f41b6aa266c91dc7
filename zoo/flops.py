"""Matmul FLOPs of a zoo model, counted from its config and the shapes of a batch.

This is the numerator of model FLOPs utilisation (MFU): the work the model *needs*, whatever the
kernels do. Only matrix products count (projections, attention scores, heads), at 2 FLOPs per
multiply-add; norms, activations, softmax and embedding lookups are left out, as in PaLM's MFU
(Chowdhery et al., 2022, app. B). Attention counts the full ``t × s`` score matrix even when causal,
as ``torch.utils.flop_counter.FlopCounterMode`` does (a test holds the two counts equal). A training
step is 3× the forward: the backward pass computes two products (input and weight gradients) for
each forward one.

Shapes: b batch, t query (or target) len, s key (or source) len, e embed dim, h heads, d head dim,
k key/value heads, f ffn dim, v vocab, n scored positions.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from zoo.blocks.feed_forward import ACTIVATIONS
from zoo.models.config import TransformerConfig
from zoo.tasks.formats import format_of


def attention_flops(c: TransformerConfig, t: int, s: int, *, cross: bool = False) -> int:
    """Forward FLOPs of one attention block for one sequence: ``t`` queries over ``s`` keys.

    Self-attention projects q, k and v from the ``t`` new tokens; cross-attention projects q from
    them and k, v from the ``s`` context tokens.
    """
    e, h, d, k = c.embed_dim, c.num_heads, c.resolved_head_dim, c.resolved_num_kv_heads
    q_dim, kv_dim = h * d, k * d
    projections = 2 * t * e * q_dim + 2 * (s if cross else t) * e * 2 * kv_dim + 2 * t * q_dim * e
    scores = 2 * 2 * t * s * h * d  # q·kᵀ and weights·v
    return projections + scores


def feed_forward_flops(c: TransformerConfig, t: int) -> int:
    """Forward FLOPs of one feed-forward block over ``t`` tokens (gated: three matrices, else two).
    A mixture of experts runs ``experts_per_token`` experts per token, plus its router."""
    matrices = 3 if ACTIVATIONS[c.activation][1] else 2
    dense = 2 * t * c.embed_dim * c.resolved_ffn_dim * matrices
    num_experts = getattr(c, "num_experts", None)
    if not num_experts:
        return dense
    return c.experts_per_token * dense + 2 * t * c.embed_dim * num_experts


def stack_flops(c: TransformerConfig, num_layers: int, t: int, context: int | None = None) -> int:
    """Forward FLOPs of ``num_layers`` layers over one sequence of ``t`` tokens, cross-attending to
    ``context`` tokens when given."""
    per_layer = attention_flops(c, t, t) + feed_forward_flops(c, t)
    if context is not None:
        per_layer += attention_flops(c, t, context, cross=True)
    return num_layers * per_layer


def forward_flops(
    c: TransformerConfig, batch_size: int, seq_len: int, *, target_len: int | None = None,
    scored: int | None = None, lm_head: bool = True,
) -> int:
    """Forward FLOPs of a whole model on a batch.

    Args:
        c: The model config; its family's shape (``zoo.tasks.formats``) decides the stacks and head.
        batch_size: ``b``.
        seq_len: Input length: tokens of the encoder or decoder stack (``s`` for T5).
        target_len: Decoder length of an encoder-decoder (``t``).
        scored: Positions the output head runs on; None = every (decoder) position. The masked-LM
            objective runs its head only on masked positions.
        lm_head: Count the vocabulary head; False for a classifier, whose small label head is left out.
    """
    layout = format_of(c)
    body = sum(stack_flops(c, layers, t, context) for layers, t, context in layout.stacks(c, seq_len, target_len))
    if not lm_head:
        return batch_size * body
    n = batch_size * layout.head_positions(seq_len, target_len) if scored is None else scored
    return batch_size * body + n * layout.head_flops(c)


def training_flops(c: TransformerConfig, batch: Mapping[str, Tensor], *, lm_head: bool = True) -> int:
    """FLOPs of one training step (forward + backward) of the family's objective on ``batch``.

    Reads only shapes (and, for the masked LM, how many labels are scored), so it costs nothing
    next to the step. Batch keys as the zoo's collators make them: ``input_ids``, plus
    ``decoder_input_ids`` for an encoder-decoder and ``labels`` (-100 = not scored) for the masked LM.
    ``lm_head=False`` counts the model body only (classifiers).
    """
    b, s, target_len, scored = format_of(c).batch_lengths(batch)
    return 3 * forward_flops(c, b, s, target_len=target_len, scored=scored if lm_head else None, lm_head=lm_head)


def batch_tokens(batch: Mapping[str, Tensor]) -> int:
    """Token positions a step computes on: the inputs, plus the decoder inputs of an
    encoder-decoder (padding included: the hardware computes it too)."""
    tokens = batch["input_ids"].numel()
    if "decoder_input_ids" in batch:
        tokens += batch["decoder_input_ids"].numel()
    return tokens
