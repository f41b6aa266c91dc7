"""One vector per sequence from any family, and the classification head that reads it.

Which vector (``pooling``), per family shape:

- encoder (BERT): ``mean`` of the encoder states over real tokens (default), or ``first`` (the
  ``[CLS]`` position), then the MLM head's pretrained transform (dense, activation, norm). The zoo's
  MLM pretraining trains no sentence-level objective on ``[CLS]``, so the mean is the sturdier summary.
- decoder (GPT, LLaMA): the state at the ``last`` real token (default), the only position that has
  seen the whole text under causal attention; or the ``mean``.
- encoder-decoder (T5): the decoder's first step (``decoder_start``, default): the start token
  cross-attends to the whole encoder output, so every pretrained weight — encoder, cross-attention
  and decoder — takes part, at the cost of one decoder position; this is also what ``zoo compare``
  measures. ``mean`` pools the encoder alone (cheaper, leaves the decoder unused).

Masks are bool (or 0/1), True at real tokens, right padding.

Shapes: b batch, t tokens, e embed dim, n labels.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from zoo.models.base import ZooModel
from zoo.models.registry import Shape, family_of

Pooling = Literal["auto", "mean", "first", "last", "decoder_start"]
#: Poolings each shape offers; the first is what ``auto`` means.
POOLINGS: dict[Shape, tuple[str, ...]] = {
    "encoder": ("mean", "first"),
    "decoder": ("last", "mean"),
    "encoder-decoder": ("decoder_start", "mean"),
}


def resolve_pooling(shape: Shape, pooling: str) -> str:
    """``pooling`` with ``auto`` resolved; one line when the shape does not offer it."""
    if pooling == "auto":
        return POOLINGS[shape][0]
    if pooling not in POOLINGS[shape]:
        raise ValueError(f"pooling={pooling!r} is not available for an {shape} model; choose one of "
                         f"{['auto', *POOLINGS[shape]]}")
    return pooling


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` ``(b, t, e)`` over the positions where ``mask`` ``(b, t)`` is True."""
    weights = mask.to(hidden.dtype)[..., None]  # (b, t, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def last_token(hidden: Tensor, mask: Tensor) -> Tensor:
    """The state at each row's last real position (right padding)."""
    last = mask.long().sum(1).clamp(min=1) - 1  # (b,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def sequence_features(model: ZooModel, input_ids: Tensor, attention_mask: Tensor, pooling: str = "auto") -> Tensor:
    """One vector ``(b, e)`` per sequence of ``input_ids`` ``(b, t)`` (see the module docstring)."""
    shape = family_of(model).shape
    pooling = resolve_pooling(shape, pooling)
    if shape == "encoder":
        hidden = model.encode(input_ids, attention_mask)
        pooled = hidden[:, 0] if pooling == "first" else mean_pool(hidden, attention_mask)
        return model.mlm_head.transform(pooled)
    if shape == "decoder":
        # Right padding: causal attention keeps pads out of every real position, so no mask is
        # needed and the fused causal kernel applies.
        hidden = model.hidden_states(input_ids)
        return last_token(hidden, attention_mask) if pooling == "last" else mean_pool(hidden, attention_mask)
    encoded = model.encode(input_ids, attention_mask)
    if pooling == "mean":
        return mean_pool(encoded, attention_mask)
    start = torch.full_like(input_ids[:, :1], model.config.pad_token_id)  # T5's decoder start token
    return model.decoder_hidden_states(start, encoded, attention_mask)[:, 0]


class ClassificationHead(nn.Module):
    """Dropout, then a linear map from a sequence vector to label logits ``(b, n)``.

    Args:
        embed_dim: Width of the sequence vector.
        num_labels: Number of classes.
        dropout: Dropout on the vector while training.
        init_std: Standard deviation of the weight initialisation (the bias starts at zero).
        output_multiplier: Factor on the vector before the linear map, so on the logits but not the
            bias: μP's output multiplier (``TransformerConfig.output_multiplier``), 1 otherwise.
    """

    def __init__(self, embed_dim: int, num_labels: int, dropout: float = 0.0, init_std: float = 0.02,
                 output_multiplier: float = 1.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, num_labels)
        self.output_multiplier = output_multiplier
        nn.init.normal_(self.classifier.weight, std=init_std)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: Tensor) -> Tensor:
        features = self.dropout(features)
        if self.output_multiplier != 1.0:
            features = features * self.output_multiplier
        return self.classifier(features)
