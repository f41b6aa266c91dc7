"""How each family shape runs each kind of task: one ``Runner`` per shape turns the comparison's
family-neutral batches (``zoo.compare.data``) into model inputs, through the models' public methods.

- seq2seq. Encoder-decoder: source → encoder, target → decoder. Decoder-only: a prefix LM over
  ``source [SEP] target </s>`` with the loss on the target only. Encoder-only: ``source [SEP]``
  then one ``[MASK]`` per output position, all predicted in one pass — so only for targets as
  long as their sources (copy, reverse, sort).
- classification. Encoder-decoder: the decoder's first step (the start token, cross-attending to
  the encoder) → head. Decoder-only: the last token of ``text </s>`` → head. Encoder-only: the
  mean of the encoder states → the MLM head's transform (dense, activation, norm) → head. These
  are ``zoo.models.heads.sequence_features``, what ``zoo fit``'s classifiers read.
- lm. Encoder-decoder: the encoder reads the first half of a block, the decoder predicts the
  second. Decoder-only: next token at every position. Encoder-only: not possible (it sees the
  whole sequence).

Every family is scored on the same outputs: the whole target (seq2seq), the label (classification),
the second half of each evaluation block given the first (lm). Greedy decoding is
``zoo.generation.generate`` with the KV cache, the decoder every other caller uses.

Runners also say what a batch costs (``Work``: tokens through each stack and attention query×key
pairs), the basis of token and FLOP budgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.compare.data import TaskData, TaskKind
from zoo.data.objectives import IGNORE_INDEX, pad_sequences
from zoo.data.tokenizers import Tokenizer
from zoo.generation import generate
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig
from zoo.models.heads import sequence_features
from zoo.models.registry import Shape, get_family


def unsupported(family: str, kind: TaskKind, equal_length: bool) -> str | None:
    """Why ``family`` cannot run a task of ``kind`` (None when it can)."""
    shape = get_family(family).shape
    if shape == "encoder" and kind == "lm":
        return "the encoder-only family cannot do open-ended language modelling (it sees the whole sequence)"
    if shape == "encoder" and kind == "seq2seq" and not equal_length:
        return ("the encoder-only family predicts masked output positions, so it needs every target as long "
                "as its source (copy, reverse, sort)")
    return None


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
        """Count one example whose stacks read ``encoder_len`` and ``decoder_len`` tokens."""
        self.encoder_tokens += encoder_len
        self.decoder_tokens += decoder_len
        self.encoder_pairs += encoder_len**2
        self.decoder_pairs += decoder_len**2
        if cross:
            self.cross_pairs += encoder_len * decoder_len


def stack_parameters(model: ZooModel) -> dict[str, int]:
    """Parameters of each stack (``encoder`` / ``decoder``) without its position table: the
    ``N`` of a stack in 6 · N · tokens."""
    tables = {id(m.weight) for m in model.modules()
              if isinstance(m, nn.Embedding) and m.embedding_dim == model.config.embed_dim}
    out: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        stack = name.split(".", 1)[0]
        if stack in ("encoder", "decoder") and id(parameter) not in tables:
            out[stack] = out.get(stack, 0) + parameter.numel()
    return out


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

    # Sizes ----------------------------------------------------------------------------------
    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        """Tokens the (encoder, decoder) stacks read for one example."""
        raise NotImplementedError

    @classmethod
    def stack_layers(cls, config: TransformerConfig) -> tuple[int, int]:
        """Layers of the (encoder, decoder) stacks."""
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

    def _greedy(self, input_ids: Tensor, mask: Tensor, max_new_tokens: int) -> Tensor:
        """``zoo.generation.generate``'s greedy decoding (KV cache); an empty ``(b, 0)`` when no
        token fits."""
        if max_new_tokens < 1:
            return input_ids.new_zeros(input_ids.shape[0], 0)
        return generate(self.model, input_ids, mask, max_new_tokens=max_new_tokens, eos_token_id=self.eos,
                        pad_token_id=self.pad)


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

    @classmethod
    def stack_layers(cls, config: TransformerConfig) -> tuple[int, int]:
        return config.num_layers, config.num_decoder_layers or config.num_layers

    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        device = batch["source_ids"].device
        sources, targets = _sources_targets(batch)
        input_ids, mask = _pad_both([s + [self.eos] for s in sources], self.pad, device)
        decoder_ids = _pad([[self.pad] + t for t in targets], self.pad, device)
        labels = _pad([t + [self.eos] for t in targets], IGNORE_INDEX, device)
        return self.model(input_ids, decoder_ids, attention_mask=mask), labels

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        sources = _rows(batch["source_ids"], batch["source_mask"])
        input_ids, mask = _pad_both([s + [self.eos] for s in sources], self.pad, batch["source_ids"].device)
        out = self._greedy(input_ids, mask, self.room(0, max_new_tokens))  # (b, 1 + n): <pad> first
        return _until_eos(out[:, 1:], self.eos)

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        texts = _rows(batch["input_ids"], batch["attention_mask"])
        input_ids, mask = _pad_both([t + [self.eos] for t in texts], self.pad, batch["input_ids"].device)
        return sequence_features(self.model, input_ids, mask)  # the decoder's first step

    def lm(self, input_ids: Tensor, score_from: int | None) -> tuple[Tensor, Tensor]:
        split = input_ids.shape[1] // 2
        start = torch.full_like(input_ids[:, :1], self.pad)
        decoder_ids = torch.cat((start, input_ids[:, split:-1]), dim=1)
        return self.model(input_ids[:, :split], decoder_ids), input_ids[:, split:]


class DecoderOnlyRunner(Runner):
    """GPT / LLaMA: one causal stream. Right padding needs no mask (pads come after every real
    token); greedy decoding left-pads the prompts (``generate`` counts positions from each row's
    first real token)."""

    shape = "decoder"

    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        if kind == "seq2seq":
            return 0, x + 1 + y + 1  # source [SEP] target </s>
        if kind == "classification":
            return 0, x + 1  # text </s>
        return 0, x

    @classmethod
    def stack_layers(cls, config: TransformerConfig) -> tuple[int, int]:
        return 0, config.num_layers

    def seq2seq(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        device = batch["source_ids"].device
        sources, targets = _sources_targets(batch)
        pairs = list(zip(sources, targets, strict=True))
        input_ids = _pad([s + [self.sep] + t + [self.eos] for s, t in pairs], self.pad, device)
        labels = _pad([[IGNORE_INDEX] * (len(s) + 1) + t + [self.eos] for s, t in pairs], IGNORE_INDEX, device)
        return self.model(input_ids)[:, :-1], labels[:, 1:]

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int) -> list[list[int]]:
        prompts = [s + [self.sep] for s in _rows(batch["source_ids"], batch["source_mask"])]
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts], device=batch["source_ids"].device)
        mask = torch.tensor([[False] * (width - len(p)) + [True] * len(p) for p in prompts], device=ids.device)
        out = self._greedy(ids, mask, self.room(width, max_new_tokens))  # (b, width + n)
        return _until_eos(out[:, width:], self.eos)

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        texts = _rows(batch["input_ids"], batch["attention_mask"])
        input_ids, mask = _pad_both([t + [self.eos] for t in texts], self.pad, batch["input_ids"].device)
        return sequence_features(self.model, input_ids, mask)  # the state at </s>, the last real token

    def lm(self, input_ids: Tensor, score_from: int | None) -> tuple[Tensor, Tensor]:
        labels = input_ids[:, 1:].clone()
        if score_from:
            labels[:, : score_from - 1] = IGNORE_INDEX  # label j is token j + 1
        return self.model(input_ids)[:, :-1], labels


class EncoderOnlyRunner(Runner):
    """BERT: bidirectional, so seq2seq becomes filling in masked output positions in one pass
    (not autoregressive: one forward, no ``generate``)."""

    shape = "encoder"

    @classmethod
    def stack_lengths(cls, kind: TaskKind, x: int, y: int) -> tuple[int, int]:
        if kind == "seq2seq":
            return x + 1 + y, 0  # source [SEP] [MASK]×target
        return x, 0

    @classmethod
    def stack_layers(cls, config: TransformerConfig) -> tuple[int, int]:
        return config.num_layers, 0

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
        return sequence_features(self.model, batch["input_ids"], batch["attention_mask"])  # mean, MLM transform


#: Runner per family shape (``zoo.models.registry.Family.shape``).
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
