"""The metrics torchmetrics lacks, which zoo fit's tasks log beside perplexity, accuracy, macro-F1 and
character error rate: exact match of generated strings, and bits per byte (tokenizer-independent).

Both keep sums as states (reduced by summation across processes), so they are exact over a whole
epoch whatever the batch sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from zoo.data.objectives import IGNORE_INDEX


class ExactMatch(Metric):
    """Fraction of predictions equal to their reference, character for character."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str], target: Sequence[str]) -> None:
        if len(preds) != len(target):
            raise ValueError(f"ExactMatch got {len(preds)} predictions for {len(target)} references")
        self.correct += sum(p == t for p, t in zip(preds, target, strict=True))
        self.total += len(target)

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class BitsPerByte(Metric):
    """Cross-entropy per UTF-8 byte of the scored text, in bits: total nats / (ln 2 · total bytes).

    Unlike perplexity per token, it does not depend on the tokenizer, so runs with different
    vocabularies compare. Special tokens (end of document) count their nats but no bytes.

    Args:
        token_bytes: ``(v,)`` UTF-8 bytes each token id stands for
            (``Tokenizer.token_byte_lengths()``).
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, token_bytes: Sequence[int] | Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("token_bytes", torch.as_tensor(token_bytes, dtype=torch.long), persistent=False)
        self.add_state("nats", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("bytes", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """``logits`` ``(..., v)`` scoring ``labels`` ``(...)``; labels of -100 are skipped."""
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                              ignore_index=IGNORE_INDEX, reduction="sum")
        scored = labels[labels != IGNORE_INDEX]
        self.nats += nll.double()
        self.bytes += self.token_bytes.to(scored.device)[scored].sum()

    def compute(self) -> Tensor:
        return (self.nats / (math.log(2) * self.bytes.clamp(min=1))).float()
