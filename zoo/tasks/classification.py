"""Sequence classification in ``zoo fit``: ``BertClassifier``, ``GPTClassifier`` (GPT and LLaMA
configs) and ``T5Classifier``. Each reads one vector per text (``zoo.tasks.formats``: encoder mean,
decoder last real token, T5 decoder first step), maps it to label logits with a new linear head, and
reports accuracy and macro-F1 (torchmetrics). Data: ``zoo.data.LabelledTextDataModule``.

The label names come from the data module (``zoo fit`` links them in) and are saved with the
hyper-parameters, so a checkpoint knows its classes: ``zoo predict`` writes each example's predicted
label and the probability of every label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from zoo.models import BertConfig, GPTConfig, T5Config
from zoo.models.heads import ClassificationHead
from zoo.models.registry import FAMILIES
from zoo.tasks.base import Stage
from zoo.tasks.finetune import FineTuneTask
from zoo.tasks.formats import Pooling, format_of

Label = str | int


class SequenceClassifier(FineTuneTask):
    """Base of the family classifiers (not used directly).

    Args:
        config: The model architecture (with ``pretrained``, only its runtime fields count).
        labels: Label names in id order; ``zoo fit`` links them from the data module.
        num_labels: The number of classes you expect; refused in one line when the data disagrees.
            Null = as many as ``labels``.
        pooling: Which vector classifies a text (``zoo.tasks.formats``): ``auto``, or ``mean`` /
            ``first`` (encoder), ``last`` / ``mean`` (decoder), ``decoder_start`` / ``mean`` (T5).
        head_dropout: Dropout before the head; null = the model's ``dropout``.
        **kwargs: ``pretrained``, ``freeze``, ``adapter`` (``zoo.tasks.finetune.FineTuneTask``) and the
            optimizer settings (``zoo.tasks.base.LanguageModelTask``).
    """

    def __init__(
        self,
        config: Any,
        labels: list[Label] | None = None,
        num_labels: int | None = None,
        pooling: Pooling = "auto",
        head_dropout: float | None = None,
        **kwargs: Any,
    ) -> None:
        if labels is None and num_labels is None:
            raise ValueError(f"{type(self).__name__} needs labels (zoo fit links them from a LabelledTextDataModule) "
                             "or num_labels")
        if labels is not None and num_labels is not None and len(labels) != num_labels:
            raise ValueError(f"num_labels={num_labels} disagrees with the data, which has {len(labels)} labels "
                             f"{list(labels)[:10]}; drop num_labels or fix the data")
        # Read by the base class's constructor (metrics, unused parameters), so set first.
        self.label_names: list[Label] = list(labels) if labels is not None else list(range(num_labels))
        self.format = format_of(self.family.shape)
        self.pooling = self.format.resolve_pooling(pooling)
        super().__init__(config, **kwargs)
        self.hparams["labels"] = self.label_names
        dropout = self.config.dropout if head_dropout is None else head_dropout
        self.head = ClassificationHead(self.config.embed_dim, len(self.label_names), dropout=dropout,
                                       init_std=self.config.init_std, output_multiplier=self.config.output_multiplier)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def _make_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "accuracy": MulticlassAccuracy(self.num_labels, average="micro"),
            "macro_f1": MulticlassF1Score(self.num_labels, average="macro"),
        })

    def text_metrics(self, tokenizer: Any) -> dict[str, Any]:
        return {}  # accuracy and macro-F1 read labels, not tokens

    def unused_parameters(self) -> list[nn.Parameter]:
        """The LM head's own weights (a tied head is the embedding, which is used); T5's whole decoder
        when the encoder mean classifies."""
        return self.format.unused_parameters(self.model, self.pooling)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Label logits ``(b, n)`` for formatted inputs ``(b, t)`` (see ``LabelledTextDataModule``)."""
        return self.head(self.format.features(self.model, input_ids, attention_mask, self.pooling))

    def forward_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, label logits (b, n), labels (b,))``: body, pooling, head and loss, one graph when
        compiled (``LanguageModelTask.forward_loss``)."""
        logits = self(batch["input_ids"], batch["attention_mask"]).float()
        labels = batch["labels"]
        return F.cross_entropy(logits, labels), logits.detach(), labels

    def _shared_step(self, batch: Mapping[str, Tensor], stage: Stage) -> Tensor:
        loss, logits, labels = self.forward_loss(batch)
        metrics = getattr(self, f"{stage}_metrics")
        for metric in metrics.values():
            metric.update(logits, labels)
        size = len(labels)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=stage != "train",
                 batch_size=size, sync_dist=stage != "train")
        self.log_dict({f"{stage}_{name}": metric for name, metric in metrics.items()}, on_step=False,
                      on_epoch=True, batch_size=size, prog_bar=stage == "val")
        return loss

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Per example: ``index`` in its split, ``probabilities`` ``(b, n)`` and the true ``labels``."""
        probabilities = self(batch["input_ids"], batch["attention_mask"]).float().softmax(-1)
        return {"index": batch["index"], "probabilities": probabilities, "labels": batch["labels"]}

    def prediction_records(self, prediction: Mapping[str, Tensor]) -> list[dict[str, Any]]:
        """One JSON record per example: ``index``, predicted ``label``, its ``probability``, every
        label's probability and the ``true_label``."""
        names, records = self.label_names, []
        for index, probs, true in zip(prediction["index"].tolist(), prediction["probabilities"].tolist(),
                                      prediction["labels"].tolist(), strict=True):
            best = max(range(len(probs)), key=probs.__getitem__)
            records.append({"index": index, "label": names[best], "probability": round(probs[best], 6),
                            "probabilities": {str(n): round(p, 6) for n, p in zip(names, probs, strict=True)},
                            "true_label": names[true]})
        return records

    @torch.no_grad()
    def classify(self, input_ids: Tensor, attention_mask: Tensor) -> list[Label]:
        """Predicted label names for formatted inputs (the model in eval mode is up to you)."""
        return [self.label_names[i] for i in self(input_ids, attention_mask).argmax(-1).tolist()]


class BertClassifier(SequenceClassifier):
    """BERT-style encoder classifier: mean of the encoder states (or ``[CLS]``), the MLM head's
    transform, a linear head. Arguments as in ``SequenceClassifier``."""

    family = FAMILIES["bert"]

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)


class GPTClassifier(SequenceClassifier):
    """GPT- or LLaMA-style decoder classifier: the state at the last real token (``</s>``), a linear
    head. Arguments as in ``SequenceClassifier``."""

    family = FAMILIES["gpt"]

    def __init__(self, config: GPTConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)


class T5Classifier(SequenceClassifier):
    """T5-style encoder-decoder classifier: the decoder's first step over the encoded text (or the
    encoder mean), a linear head. Arguments as in ``SequenceClassifier``."""

    family = FAMILIES["t5"]

    def __init__(self, config: T5Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)


#: The classifier of each base family (``zoo.models.registry.family_of(...).name``); LLaMA is a GPT config.
CLASSIFIERS: dict[str, type[SequenceClassifier]] = {"bert": BertClassifier, "gpt": GPTClassifier, "t5": T5Classifier}
