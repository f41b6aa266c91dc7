"""The three objectives: masked LM (BERT), causal LM (GPT/LLaMA) and seq2seq (T5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.models import BertConfig, GPTConfig, T5Config
from zoo.models.registry import FAMILIES
from zoo.tasks.base import IGNORE_INDEX, LanguageModelTask
from zoo.tasks.losses import token_cross_entropy


class MaskedLM(LanguageModelTask):
    """Masked language modelling: predict the original token at each masked position.

    Only masked positions go through the MLM head — the other ~85 % of vocabulary projections would
    be thrown away by the loss. Arguments as in ``LanguageModelTask``.

    Compiled, the step is two graphs: the encoder stack, then the head and loss over the masked
    positions (``head_loss``). How many positions are masked is known only from the data, and a
    shape that depends on values ends a graph.
    """

    family = FAMILIES["bert"]
    compile_units: ClassVar[tuple[str, ...]] = ("head_loss",)

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        hidden = self.model.encode(batch["input_ids"], batch.get("attention_mask"))  # (b, t, e)
        selected = batch["labels"] != IGNORE_INDEX
        logits = self.model.mlm_head(hidden[selected])  # (n, v)
        return logits[None], batch["labels"][selected][None]  # (1, n, v), (1, n)

    def forward_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        hidden = self.model.encode(batch["input_ids"], batch.get("attention_mask"))  # (b, t, e)
        selected = batch["labels"] != IGNORE_INDEX
        hidden, labels = hidden[selected], batch["labels"][selected]  # (n, e), (n,)
        # n changes every batch: one graph for every n, also under --compile.dynamic false.
        torch._dynamo.maybe_mark_dynamic(hidden, 0)
        torch._dynamo.maybe_mark_dynamic(labels, 0)
        return self.head_loss(hidden, labels)

    def head_loss(self, hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, logits (1, n, v), labels (1, n))`` of the MLM head over the masked positions'
        states ``hidden`` ``(n, e)``: head and loss in one compiled graph."""
        logits = self.model.mlm_head(hidden)  # (n, v)
        loss = token_cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        return loss, logits.detach()[None], labels[None]

    def sequence_logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.model(batch["input_ids"], batch.get("attention_mask")), batch["labels"]  # (b, t, v), (b, t)


class CausalLM(LanguageModelTask):
    """Next-token prediction: the logits at position i score token i + 1. Arguments as in
    ``LanguageModelTask``."""

    family = FAMILIES["gpt"]

    def __init__(self, config: GPTConfig, **kwargs):
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self.model(batch["input_ids"], batch.get("attention_mask"))  # (b, t, v)
        labels = batch.get("labels", batch["input_ids"])
        # Shift the labels, not the logits: flattening a slice of the logits for the loss copies all
        # (b, t, v) of them, forward and backward. The last position predicts nothing.
        return logits, F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


class Seq2SeqLM(LanguageModelTask):
    """Sequence-to-sequence (T5 span corruption or any source → target pairs): the decoder, fed the
    target shifted right, predicts the target. Arguments as in ``LanguageModelTask``."""

    family = FAMILIES["t5"]

    def __init__(self, config: T5Config, **kwargs):
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self.model(
            batch["input_ids"], batch["decoder_input_ids"],
            attention_mask=batch.get("attention_mask"), decoder_attention_mask=batch.get("decoder_attention_mask"),
        )
        return logits, batch["labels"]
