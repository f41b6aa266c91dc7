"""The comparison's LightningModules, one per kind of task, each running every family through its
``Runner`` (``zoo.compare.adapters``):

- ``SuiteSeq2Seq``: exact match and character error rate of greedy decoding.
- ``SuiteClassification``: accuracy and macro-F1 of a linear head on one vector per text.
- ``SuiteLM``: perplexity and bits per byte.

Compute is counted per training batch from the real (unpadded) lengths, after Kaplan et al. (2020,
"Scaling Laws for Neural Language Models", Table 1 and §2.1): training FLOPs ≈ 6 · N · D for N
non-embedding parameters and D tokens, plus 6 · n_layer · n_ctx · d_attn per token for attention.
Here each token is charged only for the stack it passes through (an encoder-decoder's tokens go
through one stack each), and the attention term sums query × key lengths of each layer's self- and
cross-attention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import lightning as L
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.text import CharErrorRate, Perplexity

from zoo.compare.adapters import RUNNERS, Work, batch_lengths, stack_parameters
from zoo.compare.data import TaskKind
from zoo.compare.metrics import BitsPerByte, ExactMatch
from zoo.data.objectives import IGNORE_INDEX
from zoo.data.tokenizers import Tokenizer
from zoo.models.heads import ClassificationHead
from zoo.models.registry import get_family
from zoo.tasks.base import adamw_with_schedule, configure_fused_gradient_clipping, decay_groups

Stage = Literal["train", "val", "test"]


class SuiteTask(L.LightningModule):
    """What the suite's three LightningModules share: the family model and its runner, the optimizer
    (AdamW, no decay on norms, biases and embeddings; warmup + cosine, as ``LanguageModelTask``),
    and the count of training tokens and estimated FLOPs.

    Args:
        family: ``bert``, ``gpt``, ``llama`` or ``t5``.
        config: The model config as a dict (every field, see ``TransformerConfig``).
        tokenizer: The task's tokenizer (special ids, decoding for text metrics, bytes per token).
        lr: Peak learning rate.
        weight_decay: Decoupled weight decay of matrix weights.
        betas: AdamW betas.
        warmup_steps: Linear warmup steps.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        max_steps: Length of the cosine schedule; None = the Trainer's estimate.
    """

    kind: ClassVar[TaskKind]

    def __init__(
        self,
        family: str,
        config: dict[str, Any],
        tokenizer: Tokenizer,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        warmup_steps: int = 50,
        min_lr_ratio: float = 0.1,
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.family = get_family(family)
        self.save_hyperparameters(ignore=["tokenizer"])
        self.config = self.family.config_class.from_dict(dict(config))
        self.model = self.family.model_class(self.config)
        self.tokenizer = tokenizer
        self.runner = RUNNERS[self.family.shape](self.model, tokenizer)
        self.val_metrics, self.test_metrics = self.make_metrics(), self.make_metrics()
        self.tokens_seen, self.flops_seen = 0, 0.0
        self._stack_params = stack_parameters(self.model)
        self._stack_layers = self.runner.stack_layers(self.config)

    def make_metrics(self) -> nn.ModuleDict:
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Non-embedding parameters, heads included (what budgets match)."""
        heads = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("model."))
        return self.model.num_parameters(exclude_embeddings=True) + heads

    def flops(self, work: Work) -> float:
        """Training FLOPs of ``work``: 6 · params · tokens per stack + 6 · d_attn · attention pairs
        (Kaplan et al., 2020; see the module docstring)."""
        c = self.config
        d_attn = c.num_heads * c.resolved_head_dim
        encoder_layers, decoder_layers = self._stack_layers
        dense = self._stack_params.get("encoder", 0) * work.encoder_tokens
        dense += self._stack_params.get("decoder", 0) * work.decoder_tokens
        pairs = encoder_layers * work.encoder_pairs + decoder_layers * (work.decoder_pairs + work.cross_pairs)
        return 6.0 * dense + 6.0 * d_attn * pairs

    def logits_and_labels(self, batch: Mapping[str, Any], stage: Stage) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def update_metrics(self, metrics: nn.ModuleDict, batch: Mapping[str, Any], logits: Tensor, labels: Tensor) -> None:
        raise NotImplementedError

    def _shared_step(self, batch: Mapping[str, Any], stage: Stage) -> Tensor:
        logits, labels = self.logits_and_labels(batch, stage)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        size = len(labels)
        if stage == "train":
            work = self.runner.work(self.kind, batch_lengths(self.kind, batch))
            self.tokens_seen += work.tokens
            self.flops_seen += self.flops(work)
            self.log("train_loss", loss, on_step=True, on_epoch=False, batch_size=size)
            aux = self.model.aux_loss()  # mixture-of-experts load balancing, as zoo fit's tasks add it
            if aux is not None:
                self.log("train_aux_loss", aux, on_step=True, on_epoch=False, batch_size=size)
                loss = loss + aux
            return loss
        metrics = getattr(self, f"{stage}_metrics")
        self.update_metrics(metrics, batch, logits.detach().float(), labels)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=size)
        self.log_dict({f"{stage}_{name}": metric for name, metric in metrics.items()}, on_step=False,
                      on_epoch=True, batch_size=size)
        return loss

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    configure_gradient_clipping = configure_fused_gradient_clipping  # fused AdamW with bf16-mixed + clipping

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        return adamw_with_schedule(decay_groups(self, h.weight_decay), lr=h.lr, betas=h.betas,
                                   warmup_steps=h.warmup_steps, min_lr_ratio=h.min_lr_ratio,
                                   total_steps=h.max_steps or int(self.trainer.estimated_stepping_batches))


class SuiteSeq2Seq(SuiteTask):
    """Source → target: teacher-forced loss in training; greedy decoding scored by exact match
    and character error rate (``torchmetrics.text.CharErrorRate``) in validation and test."""

    kind = "seq2seq"
    #: Decoding may run this many tokens past the longest reference before it is cut.
    decode_margin: ClassVar[int] = 4

    def make_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({"exact_match": ExactMatch(), "cer": CharErrorRate()})

    def logits_and_labels(self, batch: Mapping[str, Any], stage: Stage) -> tuple[Tensor, Tensor]:
        return self.runner.seq2seq(batch)

    def update_metrics(self, metrics: nn.ModuleDict, batch: Mapping[str, Any], logits: Tensor, labels: Tensor) -> None:
        longest = int(batch["target_mask"].sum(1).max())
        outputs = self.runner.generate(batch, longest + 1 + self.decode_margin)
        predictions = [self.tokenizer.decode(ids) for ids in outputs]
        metrics["exact_match"].update(predictions, batch["target_text"])
        metrics["cer"].update(predictions, batch["target_text"])


class SuiteClassification(SuiteTask):
    """Text → one of ``num_classes`` labels through a linear head on one vector per text;
    accuracy and macro-F1.

    Args:
        num_classes: Number of labels.
        **kwargs: As in ``SuiteTask``.
    """

    kind = "classification"

    def __init__(self, family: str, config: dict[str, Any], tokenizer: Tokenizer, num_classes: int = 2, **kwargs):
        super().__init__(family, config, tokenizer, **kwargs)  # records num_classes in hparams first
        # zoo fit's classifier head; built after the model, so the init draws follow the model's.
        self.head = ClassificationHead(self.config.embed_dim, num_classes, init_std=0.02)

    def make_metrics(self) -> nn.ModuleDict:
        num_classes = self.hparams.num_classes
        return nn.ModuleDict({
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        })

    def logits_and_labels(self, batch: Mapping[str, Any], stage: Stage) -> tuple[Tensor, Tensor]:
        return self.head(self.runner.features(batch)), batch["labels"]

    def update_metrics(self, metrics: nn.ModuleDict, batch: Mapping[str, Any], logits: Tensor, labels: Tensor) -> None:
        for metric in metrics.values():
            metric.update(logits, labels)


class SuiteLM(SuiteTask):
    """Language modelling on blocks; validation and test score the second half of each block
    given the first: perplexity (per token) and bits per byte (tokenizer-independent)."""

    kind = "lm"

    def make_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "perplexity": Perplexity(ignore_index=IGNORE_INDEX),
            "bpb": BitsPerByte(self.tokenizer.token_byte_lengths()),
        })

    def logits_and_labels(self, batch: Mapping[str, Any], stage: Stage) -> tuple[Tensor, Tensor]:
        input_ids = batch["input_ids"]
        return self.runner.lm(input_ids, None if stage == "train" else input_ids.shape[1] // 2)

    def update_metrics(self, metrics: nn.ModuleDict, batch: Mapping[str, Any], logits: Tensor, labels: Tensor) -> None:
        metrics["perplexity"].update(logits, labels)
        metrics["bpb"].update(logits, labels)


#: LightningModule per kind of task.
SUITE_TASKS: dict[TaskKind, type[SuiteTask]] = {"seq2seq": SuiteSeq2Seq, "classification": SuiteClassification,
                                                "lm": SuiteLM}
