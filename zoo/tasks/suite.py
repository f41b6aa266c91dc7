"""LightningModules of the task suite — one per kind of task, each running every family.

- ``SuiteSeq2Seq``: exact match and character error rate of greedy decoding.
- ``SuiteClassification``: accuracy and macro-F1 of a linear head on one vector per text.
- ``SuiteLM``: perplexity and bits per byte.

How each family shape runs each kind (``Runner`` below; batches come from ``zoo.data.suite``):

- seq2seq. Encoder-decoder: source → encoder, target → decoder. Decoder-only: a prefix LM over
  ``source [SEP] target </s>`` with the loss on the target only. Encoder-only: ``source [SEP]``
  then one ``[MASK]`` per output position, all predicted in one pass — so only for targets as
  long as their sources (copy, reverse, sort).
- classification. Encoder-decoder: the decoder's first step (the start token, cross-attending to
  the encoder) → head. Decoder-only: the last token of ``text </s>`` → head. Encoder-only: the
  mean of the encoder states → the MLM head's transform (dense, activation, norm) → head.
- lm. Encoder-decoder: the encoder reads the first half of a block, the decoder predicts the
  second. Decoder-only: next token at every position. Encoder-only: not possible (it sees the
  whole sequence).

Every family is scored on the same outputs: the whole target (seq2seq), the label (classification),
the second half of each evaluation block given the first (lm).

Compute is counted per training batch from the real (unpadded) lengths, after Kaplan et al. (2020,
"Scaling Laws for Neural Language Models", Table 1 and §2.1): training FLOPs ≈ 6 · N · D for N
non-embedding parameters and D tokens, plus 6 · n_layer · n_ctx · d_attn per token for attention.
Here each token is charged only for the stack it passes through (an encoder-decoder's tokens go
through one stack each), and the attention term sums query × key lengths of each layer's self- and
cross-attention.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.text import CharErrorRate, Perplexity

from zoo.data.objectives import pad_sequences
from zoo.data.suite import TaskData, TaskKind, token_byte_lengths
from zoo.data.tokenizers import Tokenizer
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config, TransformerConfig
from zoo.models.base import ZooModel
from zoo.tasks.base import IGNORE_INDEX, adamw_with_schedule, decay_groups
from zoo.tasks.metrics import BitsPerByte, ExactMatch

Shape = Literal["encoder", "decoder", "encoder-decoder"]
Stage = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Family:
    """A family the suite can train: its model, config and shape.

    Attributes:
        name: Its name in configs (``bert``, ``gpt``, ``llama``, ``t5``).
        model_class: The plain ``nn.Module``.
        config_class: Its config dataclass.
        shape: ``encoder``, ``decoder`` or ``encoder-decoder``.
        preset: Defaults over ``config_class``'s own (LLaMA's recipe); a comparison's fields win.
    """

    name: str
    model_class: type[ZooModel]
    config_class: type[TransformerConfig]
    shape: Shape
    preset: tuple[tuple[str, Any], ...] = ()

    def make_config(self, **fields: Any) -> TransformerConfig:
        """The family's config with ``fields`` over its defaults; unknown fields fail in one line."""
        return self.config_class.from_dict({**dict(self.preset), **fields})


def _differences(config: TransformerConfig, base: TransformerConfig) -> tuple[tuple[str, Any], ...]:
    return tuple((k, v) for k, v in dataclasses.asdict(config).items() if getattr(base, k) != v)


#: Families by config name; ``llama`` is the decoder family with ``GPTConfig.llama()``'s recipe.
FAMILIES: dict[str, Family] = {
    "bert": Family("bert", BERT, BertConfig, "encoder"),
    "gpt": Family("gpt", GPT, GPTConfig, "decoder"),
    "llama": Family("llama", GPT, GPTConfig, "decoder", _differences(GPTConfig.llama(), GPTConfig())),
    "t5": Family("t5", T5, T5Config, "encoder-decoder"),
}


def unsupported(family: str, kind: TaskKind, equal_length: bool) -> str | None:
    """Why ``family`` cannot run a task of ``kind`` (None when it can)."""
    shape = FAMILIES[family].shape
    if shape == "encoder" and kind == "lm":
        return "the encoder-only family cannot do open-ended language modelling (it sees the whole sequence)"
    if shape == "encoder" and kind == "seq2seq" and not equal_length:
        return ("the encoder-only family predicts masked output positions, so it needs every target as long "
                "as its source (copy, reverse, sort)")
    return None


@contextlib.contextmanager
def _shapes_only() -> Iterator[None]:
    """Build modules on the meta device with ``torch.nn.init`` switched off: shapes are all a
    parameter count needs, and initialising meta tensors costs ~15x the construction itself."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


_INIT_FUNCTIONS = ("normal_", "ones_", "zeros_", "uniform_", "kaiming_uniform_", "trunc_normal_", "constant_")


def non_embedding_parameters(family: str, config: TransformerConfig, num_classes: int = 0) -> int:
    """Non-embedding parameters of ``family`` built from ``config``, plus a classification head
    when ``num_classes`` is set — the basis of matched-parameter comparisons. Costs no memory
    (meta device) and a few milliseconds."""
    with _shapes_only():
        model = FAMILIES[family].model_class(config)
    head = config.embed_dim * num_classes + num_classes if num_classes else 0
    return model.num_parameters(exclude_embeddings=True) + head


# ---------------------------------------------------------------------------------------------
# How each family shape turns a batch into model inputs


@dataclass
class Work:
    """What one batch costs: tokens through each stack and attention query×key pairs."""

    encoder_tokens: int = 0
    decoder_tokens: int = 0
    encoder_pairs: int = 0  # summed over examples; multiply by layers
    decoder_pairs: int = 0
    cross_pairs: int = 0

    @property
    def tokens(self) -> int:
        return self.encoder_tokens + self.decoder_tokens

    def add(self, encoder_len: int, decoder_len: int, cross: bool) -> None:
        self.encoder_tokens += encoder_len
        self.decoder_tokens += decoder_len
        self.encoder_pairs += encoder_len**2
        self.decoder_pairs += decoder_len**2
        if cross:
            self.cross_pairs += encoder_len * decoder_len


def _rows(ids: Tensor, mask: Tensor) -> list[list[int]]:
    return [row[keep].tolist() for row, keep in zip(ids, mask, strict=True)]


def _sources_targets(batch: Mapping[str, Any]) -> tuple[list[list[int]], list[list[int]]]:
    return _rows(batch["source_ids"], batch["source_mask"]), _rows(batch["target_ids"], batch["target_mask"])


def _pad(rows: Sequence[Sequence[int]], value: int, device: torch.device) -> Tensor:
    return pad_sequences(rows, value)[0].to(device)


def _pad_both(rows: Sequence[Sequence[int]], value: int, device: torch.device) -> tuple[Tensor, Tensor]:
    ids, mask = pad_sequences(rows, value)
    return ids.to(device), mask.to(device)


def _until_eos(rows: Tensor, eos: int) -> list[list[int]]:
    out = []
    for row in rows.tolist():
        out.append(row[: row.index(eos)] if eos in row else row)
    return out


class Runner:
    """Feeds one family shape each kind of task. ``x``/``y`` lengths per example are
    (source, target) for seq2seq, (text, 0) for classification, (block, 0) for lm."""

    shape: ClassVar[Shape]

    def __init__(self, model: ZooModel, tokenizer: Tokenizer) -> None:
        self.model = model
        self.pad, self.eos = tokenizer.pad_id, tokenizer.eos_id
        self.sep, self.mask = tokenizer.sep_id, tokenizer.mask_id

    def room(self, length: int, wanted: int) -> int:
        """New tokens that fit after ``length`` tokens: a learned position table ends at
        ``max_seq_len``; other schemes have no end."""
        config = self.model.config
        return min(wanted, config.max_seq_len - length) if config.position == "learned" else wanted

    # Lengths of the encoder / decoder inputs for one example -------------------------------
    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        raise NotImplementedError

    @classmethod
    def work(cls, kind: TaskKind, lengths: Sequence[tuple[int, int]]) -> Work:
        """Tokens and attention pairs of examples with these (x, y) lengths."""
        work = Work()
        for x, y in lengths:
            work.add(*cls.stack_lengths(kind, x, y), cross=cls.shape == "encoder-decoder")
        return work

    @classmethod
    def max_positions(cls, kind: TaskKind, lengths: Sequence[tuple[int, int]]) -> int:
        """Longest input of any stack: what a learned position table must hold."""
        return max(max(cls.stack_lengths(kind, x, y)) for x, y in lengths)

    # The three kinds -----------------------------------------------------------------------
    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """``(logits (b, t, v), labels (b, t))`` with teacher forcing."""
        raise NotImplementedError

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        """Greedy outputs per example, without the end-of-sequence token."""
        raise NotImplementedError

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """One vector ``(b, e)`` per text for a classification head."""
        raise NotImplementedError

    def lm(self, input_ids: Tensor, score_from: int | None) -> tuple[Tensor, Tensor]:
        """``(logits, labels)`` for blocks ``(b, t)``; only tokens at ``score_from`` or later are
        scored when it is set (evaluation), every predicted token otherwise."""
        raise NotImplementedError(f"the {self.shape} family shape cannot do language modelling")


class EncoderDecoderRunner(Runner):
    """T5: the encoder reads, the decoder writes (start token = pad, as T5 does)."""

    shape = "encoder-decoder"

    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        if kind == "seq2seq":
            return x + 1, y + 1  # source </s>; <pad> target (labels: target </s>)
        if kind == "classification":
            return x + 1, 1
        return x // 2, x - x // 2

    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        device = batch["source_ids"].device
        sources, targets = _sources_targets(batch)
        input_ids, mask = _pad_both([s + [self.eos] for s in sources], self.pad, device)
        decoder_ids = _pad([[self.pad] + t for t in targets], self.pad, device)
        labels = _pad([t + [self.eos] for t in targets], IGNORE_INDEX, device)
        return self.model(input_ids, decoder_ids, attention_mask=mask), labels

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        device = batch["source_ids"].device
        sources = _rows(batch["source_ids"], batch["source_mask"])
        input_ids, mask = _pad_both([s + [self.eos] for s in sources], self.pad, device)
        encoded = self.model.encode(input_ids, mask)
        out = torch.full((len(sources), 1), self.pad, device=device)
        done = torch.zeros(len(sources), dtype=torch.bool, device=device)
        for _ in range(self.room(0, max_new_tokens)):  # the decoder input grows to 1 + steps - 1
            next_ids = self.model.decode(out, encoded, mask)[:, -1].argmax(-1).masked_fill(done, self.eos)
            out = torch.cat((out, next_ids[:, None]), dim=1)
            done |= next_ids == self.eos
            if done.all():
                break
        return _until_eos(out[:, 1:], self.eos)

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        device = batch["input_ids"].device
        texts = _rows(batch["input_ids"], batch["attention_mask"])
        input_ids, mask = _pad_both([t + [self.eos] for t in texts], self.pad, device)
        encoded = self.model.encode(input_ids, mask)
        start = self.model.embed_tokens(torch.full((len(texts), 1), self.pad, device=device))
        return self.model.decoder(start, context=encoded, context_mask=mask)[:, 0]

    def lm(self, input_ids: Tensor, score_from: int | None) -> tuple[Tensor, Tensor]:
        split = input_ids.shape[1] // 2
        start = torch.full_like(input_ids[:, :1], self.pad)
        decoder_ids = torch.cat((start, input_ids[:, split:-1]), dim=1)
        return self.model(input_ids[:, :split], decoder_ids), input_ids[:, split:]


class DecoderOnlyRunner(Runner):
    """GPT / LLaMA: one causal stream; right padding needs no mask (pads come after every real
    token), greedy decoding left-pads the prompts and passes positions."""

    shape = "decoder"

    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        if kind == "seq2seq":
            return 0, x + 1 + y + 1  # source [SEP] target </s>
        if kind == "classification":
            return 0, x + 1  # text </s>
        return 0, x

    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        device = batch["source_ids"].device
        sources, targets = _sources_targets(batch)
        pairs = list(zip(sources, targets, strict=True))
        input_ids = _pad([s + [self.sep] + t + [self.eos] for s, t in pairs], self.pad, device)
        labels = _pad([[IGNORE_INDEX] * (len(s) + 1) + t + [self.eos] for s, t in pairs], IGNORE_INDEX, device)
        return self.model(input_ids)[:, :-1], labels[:, 1:]

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        device = batch["source_ids"].device
        prompts = [s + [self.sep] for s in _rows(batch["source_ids"], batch["source_mask"])]
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts], device=device)  # left-padded
        mask = ids != self.pad
        mask[:, -1] = True
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        for _ in range(self.room(width, max_new_tokens)):
            positions = (mask.long().cumsum(1) - 1).clamp(min=0)
            logits = self.model(ids, attention_mask=mask, position_ids=positions)[:, -1]
            next_ids = logits.argmax(-1).masked_fill(done, self.eos)
            ids = torch.cat((ids, next_ids[:, None]), dim=1)
            mask = torch.cat((mask, torch.ones_like(done)[:, None]), dim=1)
            done |= next_ids == self.eos
            if done.all():
                break
        return _until_eos(ids[:, width:], self.eos)

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        device = batch["input_ids"].device
        texts = _rows(batch["input_ids"], batch["attention_mask"])
        input_ids = _pad([t + [self.eos] for t in texts], self.pad, device)
        hidden = self.model.decoder(self.model.embed_tokens(input_ids))  # (b, t, e)
        last = torch.tensor([len(t) for t in texts], device=device)  # index of </s>
        return hidden[torch.arange(len(texts), device=device), last]

    def lm(self, input_ids: Tensor, score_from: int | None) -> tuple[Tensor, Tensor]:
        labels = input_ids[:, 1:].clone()
        if score_from:
            labels[:, : score_from - 1] = IGNORE_INDEX  # label j is token j + 1
        return self.model(input_ids)[:, :-1], labels


class EncoderOnlyRunner(Runner):
    """BERT: bidirectional, so seq2seq becomes filling in masked output positions in one pass."""

    shape = "encoder"

    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        if kind == "seq2seq":
            return x + 1 + y, 0  # source [SEP] [MASK]×target
        return x, 0

    def _masked_inputs(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, list[list[int]]]:
        device = batch["source_ids"].device
        sources = _rows(batch["source_ids"], batch["source_mask"])
        # As many [MASK]s as source tokens: the output length is known only for equal-length tasks.
        input_ids, mask = _pad_both([s + [self.sep] + [self.mask] * len(s) for s in sources], self.pad, device)
        return input_ids, mask, sources

    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        input_ids, mask, sources = self._masked_inputs(batch)
        targets = _rows(batch["target_ids"], batch["target_mask"])
        labels = _pad([[IGNORE_INDEX] * (len(s) + 1) + t for s, t in zip(sources, targets, strict=True)],
                      IGNORE_INDEX, input_ids.device)
        labels = F.pad(labels, (0, input_ids.shape[1] - labels.shape[1]), value=IGNORE_INDEX)
        hidden = self.model.encode(input_ids, mask)
        selected = labels != IGNORE_INDEX
        return self.model.mlm_head(hidden[selected])[None], labels[selected][None]  # (1, n, v), (1, n)

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        input_ids, mask, sources = self._masked_inputs(batch)
        predicted = self.model(input_ids, mask).argmax(-1)
        return [predicted[i, len(s) + 1 : 2 * len(s) + 1].tolist() for i, s in enumerate(sources)]

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        mask = batch["attention_mask"]
        hidden = self.model.encode(batch["input_ids"], mask)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        head = self.model.mlm_head
        return head.norm(head.act(head.dense(pooled)))


RUNNERS: dict[Shape, type[Runner]] = {
    "encoder-decoder": EncoderDecoderRunner, "decoder": DecoderOnlyRunner, "encoder": EncoderOnlyRunner
}


def batch_lengths(kind: TaskKind, batch: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Per-example (x, y) lengths (see ``Runner``) of a collated batch."""
    if kind == "seq2seq":
        return list(zip(batch["source_mask"].sum(1).tolist(), batch["target_mask"].sum(1).tolist(), strict=True))
    if kind == "classification":
        return [(n, 0) for n in batch["attention_mask"].sum(1).tolist()]
    b, t = batch["input_ids"].shape
    return [(t, 0)] * b


def data_lengths(data: TaskData, splits: Sequence[str] = ("train", "validation", "test")) -> list[tuple[int, int]]:
    """Per-example (x, y) lengths of a task's tokenized examples."""
    out = []
    for split in splits:
        for example in data.examples[split]:
            if data.kind == "seq2seq":
                out.append((len(example["source"]), len(example["target"])))
            else:
                out.append((len(example["input_ids"]), 0))
    return out


# ---------------------------------------------------------------------------------------------
# LightningModules


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
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
        self.save_hyperparameters(ignore=["tokenizer"])
        self.family = FAMILIES[family]
        self.config = self.family.config_class.from_dict(dict(config))
        self.model = self.family.model_class(self.config)
        self.tokenizer = tokenizer
        self.runner = RUNNERS[self.family.shape](self.model, tokenizer)
        self.val_metrics, self.test_metrics = self.make_metrics(), self.make_metrics()
        self.tokens_seen, self.flops_seen = 0, 0.0
        self._stack_params = self._parameters_per_stack()

    def make_metrics(self) -> nn.ModuleDict:
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Non-embedding parameters, heads included (what budgets match)."""
        heads = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("model."))
        return self.model.num_parameters(exclude_embeddings=True) + heads

    def _parameters_per_stack(self) -> dict[str, int]:
        out = {}
        for name in ("encoder", "decoder"):
            stack = getattr(self.model, name, None)
            if stack is not None:
                table = stack.absolute_positions
                skip = {id(p) for p in table.parameters()} if table is not None else set()
                out[name] = sum(p.numel() for p in stack.parameters() if id(p) not in skip)
        return out

    def flops(self, work: Work) -> float:
        """Training FLOPs of ``work``: 6 · params · tokens per stack + 6 · d_attn · attention pairs
        (Kaplan et al., 2020; see the module docstring)."""
        c = self.config
        d_attn = c.num_heads * c.resolved_head_dim
        encoder_layers = len(self.model.encoder.layers) if hasattr(self.model, "encoder") else 0
        decoder_layers = len(self.model.decoder.layers) if hasattr(self.model, "decoder") else 0
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
        self.head = nn.Linear(self.config.embed_dim, num_classes)  # after the model: same init draws
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

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
            "bpb": BitsPerByte(token_byte_lengths(self.tokenizer)),
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


