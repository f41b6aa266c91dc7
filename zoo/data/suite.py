"""The task suite for comparing architectures: task specs, their data, and one DataModule.

A task spec is a small dataclass of options, named in YAML by its type (``copy``, ``reverse``,
``sort``, ``addition``, ``brackets``, ``stdlib_docs``, ``lm``, or ``seq2seq`` / ``classification``
for your own JSON Lines files). ``spec.build(seed)`` returns ``TaskData``: train / validation /
test splits, tokenized with one tokenizer that every family shares. Splits are deterministic per
seed and disjoint.

Batches are family-neutral (the LightningModules in ``zoo.tasks.suite`` turn them into each
family's inputs), with masks True at real tokens:

- seq2seq: ``source_ids``, ``source_mask`` (b, s); ``target_ids``, ``target_mask`` (b, t);
  ``target_text`` (list of b strings, for exact match and character error rate).
- classification: ``input_ids``, ``attention_mask`` (b, t); ``labels`` (b,).
- lm: ``input_ids`` (b, t), full blocks of packed documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from zoo.data import synthetic
from zoo.data.classification import DOC_LABELS, labelled_documents, passages
from zoo.data.corpus import builtin_corpus, load_texts, resolve_data_files
from zoo.data.objectives import pack_blocks, pad_sequences
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer, Tokenizer, cached_tokenizer_file, load_tokenizer

TaskKind = Literal["seq2seq", "classification", "lm"]
SPLITS = ("train", "validation", "test")
TokenizerKind = Literal["char", "sentencepiece"]


@dataclass
class TaskData:
    """One task's tokenized splits and the tokenizer every family uses on it.

    Attributes:
        name: The task's name in tables.
        kind: ``seq2seq``, ``classification`` or ``lm``.
        tokenizer: Shared by every family.
        examples: Per split, dicts of token ids: seq2seq ``source``/``target`` (+ ``target_text``),
            classification ``input_ids``/``label``, lm ``input_ids``.
        label_names: Class names (classification).
        equal_length: seq2seq only: every target has exactly as many tokens as its source.
    """

    name: str
    kind: TaskKind
    tokenizer: Tokenizer
    examples: dict[str, list[dict[str, Any]]]
    label_names: tuple[str, ...] = ()
    equal_length: bool = False


# ---------------------------------------------------------------------------------------------
# Helpers


def _unit_hash(key: str, seed: int) -> float:
    data = f"zoo-suite:{seed}\x00{key}".encode("utf-8", errors="surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") / 2**64


def carve(keys: list[str], seed: int, fractions: dict[str, float], what: str) -> list[str]:
    """The split of each key: ``train``, or one of ``fractions``' splits with that expected share.

    It depends on a hash of the key and the seed alone, so equal keys never straddle splits and
    adding data does not move the rest. Raises if a split ends up empty.
    """
    out = []
    for key in keys:
        u, edge, split = _unit_hash(key, seed), 0.0, "train"
        for name, fraction in fractions.items():
            edge += fraction
            if u < edge:
                split = name
                break
        out.append(split)
    for split in ("train", *fractions):
        if split not in out:
            raise ValueError(
                f"{what}: {len(set(keys))} distinct item(s) leave the {split} split empty; add data or raise "
                f"val_fraction / test_fraction"
            )
    return out


def _held_out(given: dict[str, Any], val_fraction: float, test_fraction: float) -> dict[str, float]:
    """Fractions of the splits that must be cut from train (those not given as files)."""
    wanted = {"validation": val_fraction, "test": test_fraction}
    return {split: fraction for split, fraction in wanted.items() if split not in given}


def build_tokenizer(
    kind: str, texts: list[str], vocab_size: int, cache_dir: str | os.PathLike[str] | None
) -> Tokenizer:
    """A character tokenizer over ``texts``, or a SentencePiece model trained on them (cached)."""
    if kind == "char":
        return CharTokenizer.train(texts, num_sentinels=0)
    if kind == "sentencepiece":
        from zoo.data.datamodule import default_cache_dir

        path = cached_tokenizer_file(
            texts, cache_dir or default_cache_dir(), kind="sentencepiece", vocab_size=vocab_size, num_sentinels=0
        )
        return load_tokenizer(path)
    raise ValueError(f"tokenizer must be 'char' or 'sentencepiece', got {kind!r}")


def token_byte_lengths(tokenizer: Tokenizer) -> list[int]:
    """UTF-8 bytes of text each id stands for (0 for specials), so a run's bits per byte does not
    depend on how its tokenizer cuts the text."""
    special = set(tokenizer.special_ids)
    if isinstance(tokenizer, SentencePieceTokenizer):
        sp = tokenizer._sp  # the processor: byte-fallback pieces decode to U+FFFD on their own
        return [
            0 if i in special else 1 if sp.is_byte(i) else len(sp.id_to_piece(i).replace("\u2581", " ").encode())
            for i in range(tokenizer.vocab_size)
        ]
    return [0 if i in special else len(tokenizer.decode([i]).encode()) for i in range(tokenizer.vocab_size)]


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


def _normalise_files(name: str, files: Any) -> dict[str, list[str]]:
    if isinstance(files, (str, os.PathLike)):
        files = {"train": [files]}
    if not isinstance(files, dict) or "train" not in files or set(files) - set(SPLITS):
        raise ValueError(
            f"task {name!r}: files must be a path or a mapping with 'train' and optionally 'validation' and "
            f"'test', got {files!r}"
        )
    out = {
        split: [os.fspath(p) for p in (paths if isinstance(paths, list) else [paths])]
        for split, paths in files.items()
    }
    for paths in out.values():
        for path in paths:
            if not Path(path).expanduser().is_file():
                raise FileNotFoundError(f"task {name!r}: data file {path!r} does not exist")
    return out


def read_jsonl(path: str, fields: dict[str, str], task: str) -> list[dict[str, Any]]:
    """Records of a JSON Lines file; every record must be an object holding the ``fields`` values
    (``fields`` maps each option, e.g. ``source_field``, to the field it names)."""
    records = []
    with open(Path(path).expanduser(), encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"task {task!r}: {path}:{number} is not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"task {task!r}: {path}:{number} is not a JSON object")
            missing = [(option, name) for option, name in fields.items() if name not in record]
            if missing:
                option, name = missing[0]
                raise ValueError(
                    f"task {task!r}: {path}:{number} has no field {name!r} (its fields are {sorted(record)[:10]}); "
                    f"set the task's {option} option to the field that holds it"
                )
            records.append(record)
    if not records:
        raise ValueError(f"task {task!r}: data file {path!r} holds no records")
    return records


def _spread(items: list[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (a fixed, order-independent-of-size sample)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Task specs


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


def _seq2seq_data(name: str, pairs: dict[str, list[tuple[str, str]]], tokenizer: Tokenizer) -> TaskData:
    examples = {}
    for split, items in pairs.items():
        sources = tokenizer.encode_batch([s for s, _ in items])
        targets = tokenizer.encode_batch([t for _, t in items])
        examples[split] = [
            {"source": s, "target": t, "target_text": text}
            for s, t, (_, text) in zip(sources, targets, items, strict=True)
        ]
    equal = all(len(e["source"]) == len(e["target"]) for split in examples.values() for e in split)
    return TaskData(name, "seq2seq", tokenizer, examples, equal_length=equal)


def _classification_data(
    name: str, items: dict[str, list[tuple[str, int]]], tokenizer: Tokenizer, labels: tuple[str, ...]
) -> TaskData:
    examples = {
        split: [{"input_ids": ids, "label": label} for ids, (_, label) in
                zip(tokenizer.encode_batch([t for t, _ in pairs]), pairs, strict=True)]
        for split, pairs in items.items()
    }
    return TaskData(name, "classification", tokenizer, examples, label_names=labels)


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
    """Generated source → target strings (``zoo.data.synthetic``), one character per token."""

    kind: ClassVar[TaskKind] = "seq2seq"

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        pairs = synthetic.seq2seq_splits(self.type, seed, self._sizes(), self._lengths)
        tokenizer = CharTokenizer(sorted(synthetic.SEQ2SEQ_RULES[self.type][1]), num_sentinels=0)
        return _seq2seq_data(self.name, pairs, tokenizer)


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
        return _classification_data(self.name, items, tokenizer, synthetic.BRACKET_LABELS)


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

    def build(self, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> TaskData:
        docs = labelled_documents()
        fractions = {"validation": self.val_fraction, "test": self.test_fraction}
        where = carve([text for text, _ in docs], seed, fractions, f"task {self.name!r}")
        per_class: dict[str, dict[int, list[str]]] = {split: {} for split in SPLITS}
        for (text, label), split in zip(docs, where, strict=True):
            per_class[split].setdefault(label, []).extend(passages(text, self.passage_chars, self.min_chars))
        items: dict[str, list[tuple[str, int]]] = {}
        seen: set[str] = set()  # the same boilerplate passage can occur in documents of two splits
        for split in SPLITS:
            cap = self.train_per_class if split == "train" else self.eval_per_class
            chosen = []
            for label, texts in sorted(per_class[split].items()):
                fresh = [t for t in dict.fromkeys(texts) if t not in seen]
                ranked = sorted(fresh, key=lambda t: _unit_hash(t, seed))
                chosen += [(t, label) for t in ranked[:cap]]
            seen.update(t for texts in per_class[split].values() for t in texts)
            items[split] = sorted(chosen, key=lambda item: _unit_hash(item[0], seed + 1))  # mix the classes
        tokenizer = build_tokenizer(self.tokenizer, [t for t, _ in items["train"]], self.vocab_size, cache_dir)
        return _classification_data(self.name, items, tokenizer, DOC_LABELS)


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
                        for split, paths in _normalise_files(self.name, self.files).items()}
            self._files = {split: (files["train"], data_format) for split, (files, data_format) in resolved.items()}
        if self.tokenizer not in ("char", "sentencepiece"):
            raise ValueError(f"task {self.name!r}: tokenizer must be 'char' or 'sentencepiece', got {self.tokenizer!r}")

    def _documents(self, seed: int) -> dict[str, list[str]]:
        if self.files is None:
            given = {"train": builtin_corpus()}
        else:
            given = {split: load_texts(paths, data_format, self.text_field, check_files=False)["train"]
                     for split, (paths, data_format) in self._files.items()}
        if self.max_documents:
            given = {split: docs[: self.max_documents] for split, docs in given.items()}
        held_out = _held_out(given, self.val_fraction, self.test_fraction)
        if held_out:
            docs = given["train"]
            where = carve(docs, seed, held_out, f"task {self.name!r}")
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
        if self.tokenizer not in ("char", "sentencepiece"):
            raise ValueError(f"task {self.name!r}: tokenizer must be 'char' or 'sentencepiece', got {self.tokenizer!r}")
        # Read (and check) every file now, so a missing field fails before anything trains.
        self._records = {
            split: [r for path in paths for r in read_jsonl(path, self._field_options(), self.name)]
            for split, paths in _normalise_files(self.name, self.files).items()
        }

    def _field_options(self) -> dict[str, str]:
        return {option: getattr(self, option) for option in self.fields}

    def _split_records(self, seed: int) -> dict[str, list[dict[str, Any]]]:
        given = dict(self._records)
        held_out = _held_out(given, self.val_fraction, self.test_fraction)
        if held_out:
            records = given["train"]
            keys = [json.dumps([r[f] for f in self._field_options().values()], sort_keys=True) for r in records]
            where = carve(keys, seed, held_out, f"task {self.name!r}")
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
        return _seq2seq_data(self.name, pairs, build_tokenizer(self.tokenizer, texts, self.vocab_size, cache_dir))


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
        return _classification_data(self.name, items, tokenizer, labels)


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


# ---------------------------------------------------------------------------------------------
# Batches


def collate(kind: TaskKind, examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Pad a list of examples into one family-neutral batch (see the module docstring)."""
    if kind == "seq2seq":
        source_ids, source_mask = pad_sequences([e["source"] for e in examples], pad_id)
        target_ids, target_mask = pad_sequences([e["target"] for e in examples], pad_id)
        return {"source_ids": source_ids, "source_mask": source_mask, "target_ids": target_ids,
                "target_mask": target_mask, "target_text": [e["target_text"] for e in examples]}
    if kind == "classification":
        input_ids, attention_mask = pad_sequences([e["input_ids"] for e in examples], pad_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "labels": torch.tensor([e["label"] for e in examples])}
    return {"input_ids": torch.tensor([e["input_ids"] for e in examples])}


class _Collator:
    def __init__(self, kind: TaskKind, pad_id: int) -> None:
        self.kind, self.pad_id = kind, pad_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Tensor | list[str]]:
        return collate(self.kind, examples, self.pad_id)


class SuiteDataModule(L.LightningDataModule):
    """Batches of one task's ``TaskData``: seeded shuffling for training, fixed order otherwise.

    Args:
        data: The task's splits and tokenizer.
        batch_size: Training batch size.
        eval_batch_size: Validation / test batch size.
        seed: Seeds the shuffling.
    """

    def __init__(self, data: TaskData, batch_size: int = 32, eval_batch_size: int = 128, seed: int = 0) -> None:
        super().__init__()
        self.data, self.batch_size, self.eval_batch_size, self.seed = data, batch_size, eval_batch_size, seed

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.data.examples[split], batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle, generator=generator, collate_fn=_Collator(self.data.kind, self.data.tokenizer.pad_id),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
