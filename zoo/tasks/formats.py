"""The per-shape format: how an encoder, a decoder and an encoder-decoder read and write text. The
one place that tells the three family shapes apart; data modules, tasks, ``zoo generate``,
``zoo.flops`` and ``zoo compare`` ask it instead of branching on a family.

For each shape (``FORMATS``; ``format_of(model, config or shape)``):

- **seq2seq** (source → target; instruction tuning): the decoder reads ``source [SEP] target </s>``
  in one causal stream with labels only on ``target </s>``; the encoder-decoder reads ``source </s>``
  and its decoder ``<pad> target``, predicting ``target </s>`` (T5's own format); the encoder reads
  ``source [SEP]`` then one ``[MASK]`` per source token and predicts the target there in one pass,
  so only targets as long as their sources (copy, reverse, sort) fit it.
- **classification**: the encoder reads ``[CLS] text [SEP]`` (as its MLM pretraining), the others
  ``text </s>`` (the end of a document in theirs); one vector per text (``features``): the encoder
  mean under the MLM head's transform, the decoder's last real token, T5's first decoder step.
- **generation**: the prompt (``prompt``), padding (left for decoders, whose new tokens follow the
  last column), and where an answer ends (``</s>``; the encoder's answer is its masked positions).
- **language modelling**: each shape's pretraining objective of ``zoo.data.TextDataModule``
  (``lm_objective``: ``mlm``, ``clm``, ``span``).
- **cost**: the stacks a batch passes through and the positions its output head scores
  (``zoo.flops`` counts FLOPs from these).

Batches are padded on the right (generation prompts of decoders on the left) with ``pad``; masks are
bool, True at real tokens; labels are -100 where nothing is scored. Decoder batches carry no mask:
causal attention never looks at the pads after the last real token, so the fused kernel applies.

Shapes: b batch, t tokens, e embed dim, v vocab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from zoo.data.objectives import IGNORE_INDEX, pad_sequences
from zoo.data.tokenizers import Tokenizer
from zoo.generation import generate
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig
from zoo.models.heads import last_token, mean_pool
from zoo.models.registry import Shape, family_of

Row = list[int]
Pair = tuple[Sequence[int], Sequence[int]]
Pooling = Literal["auto", "mean", "first", "last", "decoder_start"]
ClassificationLayout = Literal["auto", "cls_sep", "eos"]


def _rows(ids: Tensor, keep: Tensor) -> list[Row]:
    return [row[k].tolist() for row, k in zip(ids, keep, strict=True)]


def until_eos(ids: Sequence[int], eos_id: int) -> Row:
    """``ids`` up to (without) the first ``eos_id``."""
    ids = list(ids)
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


class Format:
    """One family shape's layouts (a subclass per shape; see the module docstring).

    Args:
        tokenizer: Supplies the special ids (pad, end of sequence, separator, class, mask).
    """

    shape: ClassVar[Shape]
    #: Poolings ``features`` offers; the first is what ``auto`` means.
    poolings: ClassVar[tuple[str, ...]]
    #: The classification layout ``auto`` means.
    classification_layout: ClassVar[str] = "eos"
    #: The shape's pretraining objective in ``zoo.data.TextDataModule``.
    lm_objective: ClassVar[str]
    #: Prompts may hold span sentinels (``<extra_id_0>``): T5's pretraining fills them in.
    reads_sentinels: ClassVar[bool] = False
    #: Writes new tokens after a prompt (``zoo.generation.generate``); an encoder fills ``[MASK]``s.
    generates: ClassVar[bool] = True
    #: A decoder stack of its own writes the target, reading the source by cross-attention (T5);
    #: otherwise the target follows the source in one stream.
    separate_target: ClassVar[bool] = False

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.pad, self.eos, self.sep = tokenizer.pad_id, tokenizer.eos_id, tokenizer.sep_id
        self.cls, self.mask = tokenizer.cls_id, tokenizer.mask_id

    # -- training layouts -------------------------------------------------------------------------

    def seq2seq(self, pairs: Sequence[Pair], max_len: int | None = None) -> dict[str, Tensor]:
        """The training batch of (source, target) id pairs; with ``max_len``, sources are cut so
        that no stack reads more than ``max_len`` tokens (targets are the caller's to cut)."""
        raise NotImplementedError

    def check_pairs(self, pairs: Sequence[Pair], what: str) -> None:
        """Refuse, in one line naming ``what`` and the example, pairs this shape cannot lay out."""

    def classification(self, texts: Sequence[Sequence[int]], max_len: int | None = None,
                       layout: ClassificationLayout = "auto") -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` of texts, each cut to fit ``max_len`` tokens:
        ``cls_sep`` = ``[CLS] text [SEP]``, ``eos`` = ``text </s>``, ``auto`` = this shape's."""
        layout = self.classification_layout if layout == "auto" else layout
        if layout not in ("cls_sep", "eos"):
            raise ValueError(f"input layout {layout!r} must be 'auto', 'cls_sep' or 'eos'")
        room = 10**9 if max_len is None else max_len
        if layout == "cls_sep":
            rows = [[self.cls, *list(ids)[: max(room - 2, 0)], self.sep] for ids in texts]
        else:
            rows = [[*list(ids)[: max(room - 1, 0)], self.eos] for ids in texts]
        input_ids, mask = pad_sequences(rows, self.pad)
        return {"input_ids": input_ids, "attention_mask": mask}

    # -- generation -------------------------------------------------------------------------------

    def prompt(self, ids: Sequence[int], *, instruction: bool = False) -> Row:
        """A generation prompt for a text's ids; ``instruction``: in the seq2seq format trained on."""
        raise NotImplementedError

    def prompts(self, batch: Mapping[str, Tensor]) -> list[Row]:
        """The prompts of a seq2seq training batch (each source in the format it was trained in)."""
        return _rows(batch["input_ids"], batch["attention_mask"])

    def references(self, batch: Mapping[str, Tensor]) -> list[Row]:
        """The targets of a seq2seq training batch, without their ``</s>``."""
        return [until_eos(row, self.eos) for row in _rows(batch["labels"], batch["labels"] != IGNORE_INDEX)]

    def pad_prompts(self, rows: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """``(input_ids, attention_mask)`` of prompts, padded on the right."""
        return pad_sequences(rows, self.pad)

    def generate(self, model: ZooModel, rows: Sequence[Sequence[int]], max_new_tokens: int, *,
                 fit_positions: bool = False, **options: Any) -> list[Row]:
        """The new tokens after each prompt, up to (without) ``</s>`` (``zoo.generation.generate``
        with ``options``). ``fit_positions``: stop where a learned position table ends instead of
        refusing to start."""
        input_ids, mask = self.pad_prompts(rows)
        if fit_positions and model.config.position == "learned":
            max_new_tokens = min(max_new_tokens, model.config.max_seq_len - self._positions_taken(input_ids))
        if max_new_tokens < 1:
            return [[] for _ in rows]
        out = generate(model, input_ids, mask, max_new_tokens=max_new_tokens, eos_token_id=self.eos,
                       pad_token_id=self.pad, **options)
        return [until_eos(row, self.eos) for row in out[:, self._kept(input_ids):].tolist()]

    def _kept(self, input_ids: Tensor) -> int:
        """Columns of ``generate``'s output before the new tokens (decoders: the prompt)."""
        return 1  # encoder-decoders: the decoder start token

    def _positions_taken(self, input_ids: Tensor) -> int:
        """Positions of the generating stack's table the prompt already takes (decoders: all)."""
        return 0

    def answer(self, model: ZooModel, batch: Mapping[str, Tensor], margin: int = 4) -> list[Row]:
        """Greedy answers to the prompts of a seq2seq batch, each up to ``margin`` tokens longer
        than the batch's longest reference (then cut)."""
        longest = max(map(len, self.references(batch)), default=0)
        return self.generate(model, self.prompts(batch), longest + 1 + margin, fit_positions=True)

    # -- reading a model --------------------------------------------------------------------------

    @classmethod
    def resolve_pooling(cls, pooling: str) -> str:
        """``pooling`` with ``auto`` resolved; one line when this shape does not offer it."""
        if pooling == "auto":
            return cls.poolings[0]
        if pooling not in cls.poolings:
            raise ValueError(f"pooling={pooling!r} is not available for an {cls.shape} model; choose one of "
                             f"{['auto', *cls.poolings]}")
        return pooling

    @classmethod
    def features(cls, model: ZooModel, input_ids: Tensor, attention_mask: Tensor, pooling: str = "auto") -> Tensor:
        """One vector ``(b, e)`` per sequence of ``input_ids`` ``(b, t)``."""
        raise NotImplementedError

    @classmethod
    def unused_parameters(cls, model: ZooModel, pooling: str) -> list[nn.Parameter]:
        """Parameters a classifier reading ``features`` never uses: an untied LM head's weights."""
        return [] if model.config.tie_embeddings else [model.lm_head.weight]

    # -- cost -------------------------------------------------------------------------------------

    @classmethod
    def stacks(cls, c: TransformerConfig, seq_len: int, target_len: int | None) -> list[tuple[int, int, int | None]]:
        """``(layers, tokens, context tokens or None)`` of each stack a sequence passes through."""
        return [(c.num_layers, seq_len, None)]

    @classmethod
    def head_positions(cls, seq_len: int, target_len: int | None) -> int:
        """Positions per sequence the output head runs on (when every position is scored)."""
        return seq_len

    @classmethod
    def head_flops(cls, c: TransformerConfig) -> int:
        """Forward FLOPs of the output head at one position (vocabulary projection)."""
        return 2 * c.embed_dim * c.vocab_size

    @classmethod
    def batch_lengths(cls, batch: Mapping[str, Tensor]) -> tuple[int, int, int | None, int | None]:
        """``(b, seq_len, target_len, scored positions or None)`` of a training batch."""
        b, s = batch["input_ids"].shape
        return b, s, None, None


class DecoderFormat(Format):
    """GPT, LLaMA: one causal stream; generation prompts padded on the left."""

    shape = "decoder"
    poolings = ("last", "mean")
    lm_objective = "clm"

    def seq2seq(self, pairs: Sequence[Pair], max_len: int | None = None) -> dict[str, Tensor]:
        rows, labels = [], []
        for source, target in pairs:
            response = [*target, self.eos]
            room = len(source) if max_len is None else max(max_len - 1 - len(response), 0)
            prompt = [*list(source)[:room], self.sep]
            rows.append(prompt + response)
            labels.append([IGNORE_INDEX] * len(prompt) + response)
        return {"input_ids": pad_sequences(rows, self.pad)[0], "labels": pad_sequences(labels, IGNORE_INDEX)[0]}

    def prompt(self, ids: Sequence[int], *, instruction: bool = False) -> Row:
        # Training blocks are documents separated by </s>, so an empty plain prompt starts after one.
        return [*ids, self.sep] if instruction else (list(ids) or [self.eos])

    def prompts(self, batch: Mapping[str, Tensor]) -> list[Row]:
        scored = batch["labels"] != IGNORE_INDEX
        prompt_len = scored.int().argmax(1).tolist()  # the first scored position
        return [row[:n] for row, n in zip(batch["input_ids"].tolist(), prompt_len, strict=True)]

    def pad_prompts(self, rows: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        width = max(map(len, rows))
        ids = torch.tensor([[self.pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
        mask = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
        return ids, mask

    def _kept(self, input_ids: Tensor) -> int:
        return input_ids.shape[1]

    _positions_taken = _kept

    @classmethod
    def features(cls, model: ZooModel, input_ids: Tensor, attention_mask: Tensor, pooling: str = "auto") -> Tensor:
        hidden = model.hidden_states(input_ids)  # right padding: no mask needed under causal attention
        if cls.resolve_pooling(pooling) == "last":
            return last_token(hidden, attention_mask)  # the only position that has seen the whole text
        return mean_pool(hidden, attention_mask)


class EncoderDecoderFormat(Format):
    """T5: the encoder reads, the decoder writes, starting from ``<pad>`` (as T5 does)."""

    shape = "encoder-decoder"
    poolings = ("decoder_start", "mean")
    lm_objective = "span"
    reads_sentinels = True
    separate_target = True

    def seq2seq(self, pairs: Sequence[Pair], max_len: int | None = None) -> dict[str, Tensor]:
        room = None if max_len is None else max(max_len - 1, 0)
        input_ids, mask = pad_sequences([[*list(s)[:room], self.eos] for s, _ in pairs], self.pad)
        return {"input_ids": input_ids, "attention_mask": mask,
                "decoder_input_ids": pad_sequences([[self.pad, *t] for _, t in pairs], self.pad)[0],
                "labels": pad_sequences([[*t, self.eos] for _, t in pairs], IGNORE_INDEX)[0]}

    def prompt(self, ids: Sequence[int], *, instruction: bool = False) -> Row:
        return [*ids, self.eos]

    @classmethod
    def features(cls, model: ZooModel, input_ids: Tensor, attention_mask: Tensor, pooling: str = "auto") -> Tensor:
        encoded = model.encode(input_ids, attention_mask)
        if cls.resolve_pooling(pooling) == "mean":
            return mean_pool(encoded, attention_mask)
        # The decoder's first step cross-attends to the whole text: every pretrained weight takes part.
        start = torch.full_like(input_ids[:, :1], model.config.pad_token_id)
        return model.decoder_hidden_states(start, encoded, attention_mask)[:, 0]

    @classmethod
    def unused_parameters(cls, model: ZooModel, pooling: str) -> list[nn.Parameter]:
        unused = super().unused_parameters(model, pooling)
        return unused + list(model.decoder.parameters()) if pooling == "mean" else unused

    @classmethod
    def stacks(cls, c: TransformerConfig, seq_len: int, target_len: int | None) -> list[tuple[int, int, int | None]]:
        if target_len is None:
            raise ValueError("an encoder-decoder needs target_len (the decoder length)")
        return [(c.num_layers, seq_len, None), (getattr(c, "num_decoder_layers", None) or c.num_layers,
                                                target_len, seq_len)]

    @classmethod
    def head_positions(cls, seq_len: int, target_len: int | None) -> int:
        return target_len

    @classmethod
    def batch_lengths(cls, batch: Mapping[str, Tensor]) -> tuple[int, int, int | None, int | None]:
        b, s = batch["input_ids"].shape
        # Without decoder inputs the batch is a classifier's: it reads the decoder's first step only.
        return b, s, batch["decoder_input_ids"].shape[1] if "decoder_input_ids" in batch else 1, None


class EncoderFormat(Format):
    """BERT: bidirectional; it writes by filling ``[MASK]`` positions in one forward pass."""

    shape = "encoder"
    poolings = ("mean", "first")
    classification_layout = "cls_sep"
    lm_objective = "mlm"
    generates = False

    def check_pairs(self, pairs: Sequence[Pair], what: str) -> None:
        for i, (source, target) in enumerate(pairs):
            if len(source) != len(target):
                raise ValueError(f"an encoder fills one [MASK] per source token, so every target must be as long "
                                 f"as its source; {what} {i} has {len(source)} source and {len(target)} target "
                                 f"tokens (an encoder can learn copy, reverse or sort, not free answers)")

    def seq2seq(self, pairs: Sequence[Pair], max_len: int | None = None) -> dict[str, Tensor]:
        self.check_pairs(pairs, "example")
        room = None if max_len is None else max((max_len - 1) // 2, 0)
        rows, labels = [], []
        for source, target in pairs:
            source, target = list(source)[:room], list(target)[:room]
            rows.append(self.prompt(source, instruction=True))
            labels.append([IGNORE_INDEX] * (len(source) + 1) + target)
        input_ids, mask = pad_sequences(rows, self.pad)
        label_ids = torch.full_like(input_ids, IGNORE_INDEX)
        label_ids[:, : max(map(len, labels))] = pad_sequences(labels, IGNORE_INDEX)[0]
        return {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids}

    def prompt(self, ids: Sequence[int], *, instruction: bool = False) -> Row:
        # As many [MASK]s as source tokens: the output length is known only for equal-length tasks.
        return [*ids, self.sep, *[self.mask] * len(ids)] if instruction else [self.cls, *ids, self.sep]

    def references(self, batch: Mapping[str, Tensor]) -> list[Row]:
        return _rows(batch["labels"], batch["labels"] != IGNORE_INDEX)  # no </s>: one token per [MASK]

    @torch.no_grad()
    def generate(self, model: ZooModel, rows: Sequence[Sequence[int]], max_new_tokens: int, *,
                 fit_positions: bool = False, **options: Any) -> list[Row]:
        """The most likely token at each ``[MASK]`` of each prompt (one forward pass, no decoding)."""
        input_ids, mask = self.pad_prompts(rows)
        device = model.embed_tokens.weight.device
        predicted = model(input_ids.to(device), mask.to(device)).argmax(-1).cpu()
        return _rows(predicted, input_ids == self.mask)

    @classmethod
    def features(cls, model: ZooModel, input_ids: Tensor, attention_mask: Tensor, pooling: str = "auto") -> Tensor:
        hidden = model.encode(input_ids, attention_mask)
        pooled = hidden[:, 0] if cls.resolve_pooling(pooling) == "first" else mean_pool(hidden, attention_mask)
        return model.mlm_head.transform(pooled)  # the pretrained dense, activation, norm

    @classmethod
    def unused_parameters(cls, model: ZooModel, pooling: str) -> list[nn.Parameter]:
        return [model.mlm_head.bias, *super().unused_parameters(model, pooling)]

    @classmethod
    def head_flops(cls, c: TransformerConfig) -> int:
        return super().head_flops(c) + 2 * c.embed_dim * c.embed_dim  # the MLM head's dense transform first

    @classmethod
    def batch_lengths(cls, batch: Mapping[str, Tensor]) -> tuple[int, int, int | None, int | None]:
        b, s = batch["input_ids"].shape
        scored = int((batch["labels"] != IGNORE_INDEX).sum()) if "labels" in batch else None
        return b, s, None, scored  # the masked-LM objective runs its head on scored positions only


#: The format of each family shape (``zoo.models.registry.Family.shape``).
FORMATS: dict[Shape, type[Format]] = {f.shape: f for f in (EncoderFormat, DecoderFormat, EncoderDecoderFormat)}


def format_of(obj: ZooModel | TransformerConfig | type | str) -> type[Format]:
    """The format class of a model or config (instance or class) or of a shape name."""
    return FORMATS[obj if isinstance(obj, str) else family_of(obj).shape]
