"""The pieces a classifier reads a sequence with: pooling over positions and the classification head.
Which vector each family shape classifies by (``features``) is the per-shape format's
(``zoo.tasks.formats``).

Masks are bool (or 0/1), True at real tokens, right padding.

Shapes: b batch, t tokens, e embed dim, n labels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` ``(b, t, e)`` over the positions where ``mask`` ``(b, t)`` is True."""
    weights = mask.to(hidden.dtype)[..., None]  # (b, t, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def last_token(hidden: Tensor, mask: Tensor) -> Tensor:
    """The state at each row's last real position (right padding)."""
    last = mask.long().sum(1).clamp(min=1) - 1  # (b,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


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
