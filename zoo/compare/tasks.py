"""The comparison's tasks: small dataclasses of options, named in YAML by their type (``copy``,
``reverse``, ``sort``, ``addition``, ``brackets``, ``stdlib_docs``, ``lm``, or ``seq2seq`` /
``classification`` for your own JSON Lines files). ``spec.build(seed)`` returns ``TaskData``
(``zoo.compare.data``): train / validation / test splits, tokenized with one tokenizer every family
shares. Splits are deterministic per seed and disjoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from zoo.compare import synthetic
from zoo.compare.data import (
    SPLITS,
    TaskData,
    TaskKind,
    build_tokenizer,
    classification_data,
    held_out_fractions,
    normalise_files,
    read_jsonl,
    seq2seq_data,
    split_keys,
)
from zoo.data.classification import DOC_LABELS, python_docs_passages
from zoo.data.corpus import builtin_corpus, load_texts, resolve_data_files
from zoo.data.objectives import pack_blocks
from zoo.data.tokenizers import CharTokenizer, TokenizerKind, check_tokenizer_kind


def _check_positive(name: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"task {name!r}: {key}={value!r} must be a positive integer")


def _check_fractions(name: str, val_fraction: float, test_fraction: float) -> None:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"task {name!r}: val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
            f"with a sum below 1"
        )


def _check_tokenizer(name: str, kind: str) -> None:
    try:
        check_tokenizer_kind(kind)
    except ValueError as error:
        raise ValueError(f"task {name!r}: {error}") from None


def _spread(items: list[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (a fixed, order-independent-of-size sample)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


@dataclass
class TaskSpec:
    """Options every task shares.

    Args:
        name: The task's name in tables and plots (default: its type).
    """

    name: str = ""
    type: ClassVar[str]
    kind: ClassVar[TaskKind]
    #: seq2seq: target length always equals source length (known before the data is built).
    equal_length: ClassVar[bool | None] = None
    #: What the test split measures, when it is not just held-out data (printed under tables).
    test_note: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.type

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        """Generate or read the data, split it by ``seed``, and tokenize it."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The options as plain values (for result fingerprints)."""
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass
class _SyntheticTask(TaskSpec):
    """Options of the generated tasks.

    Args:
        train_size: Training examples.
        val_size: Validation examples (same lengths as training).
        test_size: Test examples, all longer than any training input (length generalisation).
        min_len: Shortest input (addition: digits of the longer operand; brackets: characters).
        max_len: Longest training / validation input.
        test_min_len: Shortest test input; default ``max_len + 1``.
        test_max_len: Longest test input; default ``max_len + max(2, max_len // 2)``.
    """

    train_size: int = 4000
    val_size: int = 200
    test_size: int = 200
    min_len: int = 1
    max_len: int = 8
    test_min_len: int | None = None
    test_max_len: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self.name, {"train_size": self.train_size, "val_size": self.val_size,
                                    "test_size": self.test_size, "min_len": self.min_len, "max_len": self.max_len})
        self.test_min_len = self.test_min_len or self.max_len + 1
        self.test_max_len = self.test_max_len or max(self.test_min_len, self.max_len + max(2, self.max_len // 2))
        try:
            self._lengths = synthetic.Lengths(self.min_len, self.max_len, self.test_min_len, self.test_max_len)
        except ValueError as error:
            raise ValueError(f"task {self.name!r}: {error}") from None

    test_note: ClassVar[str] = (
        "Test inputs are longer than any training input: the test columns measure length generalisation."
    )

    def _sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "validation": self.val_size, "test": self.test_size}


@dataclass
class SyntheticSeq2Seq(_SyntheticTask):
    """Generated source → target strings (``zoo.compare.synthetic``), one character per token."""

    kind: ClassVar[TaskKind] = "seq2seq"

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        pairs = synthetic.seq2seq_splits(self.type, seed, self._sizes(), self._lengths)
        tokenizer = CharTokenizer(sorted(synthetic.SEQ2SEQ_RULES[self.type][1]), num_sentinels=0)
        return seq2seq_data(self.name, pairs, tokenizer)


@dataclass
class CopyTask(SyntheticSeq2Seq):
    """``copy``: the target repeats the source (16 letters)."""

    type: ClassVar[str] = "copy"
    equal_length: ClassVar[bool | None] = True


@dataclass
class ReverseTask(SyntheticSeq2Seq):
    """``reverse``: the target is the source backwards."""

    type: ClassVar[str] = "reverse"
    equal_length: ClassVar[bool | None] = True


@dataclass
class SortTask(SyntheticSeq2Seq):
    """``sort``: the target is the source's characters in sorted order."""

    type: ClassVar[str] = "sort"
    equal_length: ClassVar[bool | None] = True


@dataclass
class AdditionTask(SyntheticSeq2Seq):
    """``addition``: the source is ``a+b`` (the longer operand has min_len..max_len digits), the
    target their sum in decimal."""

    max_len: int = 4
    type: ClassVar[str] = "addition"
    equal_length: ClassVar[bool | None] = False


@dataclass
class BracketsTask(_SyntheticTask):
    """``brackets``: is a string of ``()`` and ``[]`` balanced? Half of every split is; the rest are
    near misses (two brackets swapped or one changed). Lengths are rounded up to even."""

    min_len: int = 2
    max_len: int = 16
    type: ClassVar[str] = "brackets"
    kind: ClassVar[TaskKind] = "classification"

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        items = synthetic.bracket_splits(seed, self._sizes(), self._lengths)
        tokenizer = CharTokenizer(sorted(synthetic.BRACKETS), num_sentinels=0)
        return classification_data(self.name, items, tokenizer, synthetic.BRACKET_LABELS)


@dataclass
class StdlibDocsTask(TaskSpec):
    """Which part of the Python documentation does a passage come from? Five classes from the
    built-in corpus (see ``zoo.data.classification``). Documents, not passages, are split, so a
    document's passages never straddle splits.

    Args:
        passage_chars: Longest passage in characters.
        min_chars: Shorter passages are dropped.
        train_per_class: At most this many training passages per class (balances the classes).
        eval_per_class: At most this many validation and test passages per class.
        val_fraction: Fraction of documents for validation.
        test_fraction: Fraction of documents for test.
        tokenizer: ``sentencepiece`` (trained on the training passages) or ``char``.
        vocab_size: SentencePiece vocabulary size.
    """

    passage_chars: int = 160
    min_chars: int = 48
    train_per_class: int = 500
    eval_per_class: int = 40
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    tokenizer: TokenizerKind = "sentencepiece"
    vocab_size: int = 1000
    type: ClassVar[str] = "stdlib_docs"
    kind: ClassVar[TaskKind] = "classification"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self.name, {"passage_chars": self.passage_chars, "min_chars": self.min_chars,
                                    "train_per_class": self.train_per_class, "eval_per_class": self.eval_per_class})
        _check_fractions(self.name, self.val_fraction, self.test_fraction)
        _check_tokenizer(self.name, self.tokenizer)

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        # The passages zoo fit's LabelledTextDataModule trains on (its built-in task), split and capped alike.
        items = python_docs_passages(seed, passage_chars=self.passage_chars, min_chars=self.min_chars,
                                     train_per_class=self.train_per_class, eval_per_class=self.eval_per_class,
                                     val_fraction=self.val_fraction, test_fraction=self.test_fraction)
        for split in SPLITS:
            if not items[split]:
                raise ValueError(f"task {self.name!r}: the {split} split is empty; raise val_fraction / test_fraction")
        tokenizer = build_tokenizer(self.tokenizer, [t for t, _ in items["train"]], self.vocab_size, cache_dir)
        return classification_data(self.name, items, tokenizer, DOC_LABELS)


@dataclass
class LanguageModelingTask(TaskSpec):
    """Language modelling on the built-in corpus (or your text files) packed into blocks.

    Every family is scored on the same tokens: the second half of each validation / test block
    given its first half (a decoder-only model still trains on every position; an encoder-decoder
    reads the first half with its encoder). Metrics: perplexity and bits per byte.

    Args:
        files: Text (.txt, one document per line), JSON Lines or parquet files: a path, or a mapping
            with ``train`` and optionally ``validation`` / ``test``. None: the built-in corpus.
        text_field: Field holding the text in JSON / parquet files.
        block_len: Tokens per block.
        val_blocks: Validation blocks (spread evenly over the validation documents).
        test_blocks: Test blocks.
        val_fraction: Fraction of documents held out for validation (when no validation file).
        test_fraction: Fraction of documents held out for test (when no test file).
        max_documents: Use only the first this many documents (quick runs).
        tokenizer: ``sentencepiece`` (trained on the training split) or ``char``.
        vocab_size: SentencePiece vocabulary size.
    """

    files: str | dict[str, Any] | None = None
    text_field: str = "text"
    block_len: int = 128
    val_blocks: int = 64
    test_blocks: int = 64
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_documents: int | None = None
    tokenizer: TokenizerKind = "sentencepiece"
    vocab_size: int = 2000
    type: ClassVar[str] = "lm"
    kind: ClassVar[TaskKind] = "lm"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self.name, {"block_len": self.block_len, "val_blocks": self.val_blocks,
                                    "test_blocks": self.test_blocks})
        if self.block_len < 4:
            raise ValueError(f"task {self.name!r}: block_len={self.block_len} must be at least 4")
        _check_fractions(self.name, self.val_fraction, self.test_fraction)
        if self.files is not None:
            resolved = {split: resolve_data_files(paths, None, self.text_field)
                        for split, paths in normalise_files(self.name, self.files).items()}
            self._files = {split: (files["train"], data_format) for split, (files, data_format) in resolved.items()}
        _check_tokenizer(self.name, self.tokenizer)

    def _documents(self, seed: int) -> dict[str, list[str]]:
        if self.files is None:
            given = {"train": builtin_corpus()}
        else:
            given = {split: load_texts(paths, data_format, self.text_field, check_files=False)["train"]
                     for split, (paths, data_format) in self._files.items()}
        if self.max_documents:
            given = {split: docs[: self.max_documents] for split, docs in given.items()}
        held_out = held_out_fractions(given, self.val_fraction, self.test_fraction)
        if held_out:
            docs = given["train"]
            where = split_keys(docs, seed, held_out, f"task {self.name!r}")
            for split in ("train", *held_out):
                given[split] = [doc for doc, w in zip(docs, where, strict=True) if w == split]
        return given

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        docs = self._documents(seed)
        tokenizer = build_tokenizer(self.tokenizer, docs["train"], self.vocab_size, cache_dir)
        examples = {}
        for split in SPLITS:
            blocks = pack_blocks(tokenizer.encode_batch(docs[split]), self.block_len, eos_id=tokenizer.eos_id)
            if split != "train":
                blocks = _spread(blocks, self.val_blocks if split == "validation" else self.test_blocks)
            if not blocks:
                raise ValueError(
                    f"task {self.name!r}: the {split} split has fewer than block_len={self.block_len} tokens; "
                    f"lower block_len or add text"
                )
            examples[split] = [{"input_ids": block} for block in blocks]
        return TaskData(self.name, "lm", tokenizer, examples)


@dataclass
class _JsonlTask(TaskSpec):
    files: str | dict[str, Any] = ""
    tokenizer: TokenizerKind = "char"
    vocab_size: int = 1000
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    fields: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.files:
            raise ValueError(f"task {self.name!r}: a {self.type} task needs files (a JSON Lines path or "
                             f"a mapping with 'train' and optionally 'validation' / 'test')")
        _check_fractions(self.name, self.val_fraction, self.test_fraction)
        _check_tokenizer(self.name, self.tokenizer)
        # Read (and check) every file now, so a missing field fails before anything trains.
        self._records = {
            split: [r for path in paths for r in read_jsonl(path, self._field_options(), self.name)]
            for split, paths in normalise_files(self.name, self.files).items()
        }

    def _field_options(self) -> dict[str, str]:
        return {option: getattr(self, option) for option in self.fields}

    def _split_records(self, seed: int) -> dict[str, list[dict[str, Any]]]:
        given = dict(self._records)
        held_out = held_out_fractions(given, self.val_fraction, self.test_fraction)
        if held_out:
            records = given["train"]
            keys = [json.dumps([r[f] for f in self._field_options().values()], sort_keys=True) for r in records]
            where = split_keys(keys, seed, held_out, f"task {self.name!r}")
            for split in ("train", *held_out):
                given[split] = [r for r, w in zip(records, where, strict=True) if w == split]
        return given


@dataclass
class JsonlSeq2SeqTask(_JsonlTask):
    """Your own source → target pairs from JSON Lines files.

    Args:
        files: A path (split into train / validation / test per seed) or a mapping with ``train``
            and optionally ``validation`` and ``test``.
        source_field: Field holding the source text.
        target_field: Field holding the target text.
        tokenizer: ``char`` or ``sentencepiece`` (trained on the training sources and targets).
        vocab_size: SentencePiece vocabulary size.
        val_fraction: Fraction of training records held out for validation when there is no validation file.
        test_fraction: Likewise for test.
    """

    source_field: str = "source"
    target_field: str = "target"
    type: ClassVar[str] = "seq2seq"
    kind: ClassVar[TaskKind] = "seq2seq"
    fields: ClassVar[tuple[str, ...]] = ("source_field", "target_field")

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        records = self._split_records(seed)
        pairs = {split: [(str(r[self.source_field]), str(r[self.target_field])) for r in records[split]]
                 for split in SPLITS}
        texts = [text for pair in pairs["train"] for text in pair]
        return seq2seq_data(self.name, pairs, build_tokenizer(self.tokenizer, texts, self.vocab_size, cache_dir))


@dataclass
class JsonlClassificationTask(_JsonlTask):
    """Your own text → label examples from JSON Lines files; labels are any JSON scalars, classes
    are the labels of the training split (sorted). Options as in ``JsonlSeq2SeqTask``.

    Args:
        text_field: Field holding the text.
        label_field: Field holding the label.
    """

    text_field: str = "text"
    label_field: str = "label"
    type: ClassVar[str] = "classification"
    kind: ClassVar[TaskKind] = "classification"
    fields: ClassVar[tuple[str, ...]] = ("text_field", "label_field")

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        records = self._split_records(seed)
        labels = tuple(sorted({str(r[self.label_field]) for r in records["train"]}))
        index = {label: i for i, label in enumerate(labels)}
        items: dict[str, list[tuple[str, int]]] = {}
        for split in SPLITS:
            unknown = sorted({str(r[self.label_field]) for r in records[split]} - set(labels))
            if unknown:
                raise ValueError(f"task {self.name!r}: {split} labels {unknown[:5]} never occur in training")
            items[split] = [(str(r[self.text_field]), index[str(r[self.label_field])]) for r in records[split]]
        tokenizer = build_tokenizer(self.tokenizer, [t for t, _ in items["train"]], self.vocab_size, cache_dir)
        return classification_data(self.name, items, tokenizer, labels)


#: YAML ``type`` -> task spec class.
TASK_TYPES: dict[str, type[TaskSpec]] = {
    cls.type: cls
    for cls in (CopyTask, ReverseTask, SortTask, AdditionTask, BracketsTask, StdlibDocsTask, LanguageModelingTask,
                JsonlSeq2SeqTask, JsonlClassificationTask)
}


def task_from_config(item: str | dict[str, Any]) -> TaskSpec:
    """A task spec from YAML: a type name (``reverse``), or a mapping with ``type`` (default: its
    ``name``), an optional ``name`` and the type's options.

    Raises:
        ValueError: Unknown type or option, or a bad value; the message names it.
    """
    if isinstance(item, str):
        item = {"type": item}
    if not isinstance(item, dict):
        raise ValueError(f"a task must be a name or a mapping, got {item!r}")
    options = dict(item)
    kind = options.pop("type", options.get("name"))
    if kind not in TASK_TYPES:
        raise ValueError(f"unknown task {kind!r}; choose one of {sorted(TASK_TYPES)} (or set type: for a named task)")
    cls = TASK_TYPES[kind]
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"task {options.get('name', kind)!r}: unknown option {unknown[0]!r}; "
                         f"valid options are {sorted(valid)}")
    return cls(**options)
