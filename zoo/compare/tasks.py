"""The comparison's tasks: names in the study file (``copy``, ``reverse``, ``sort``, ``addition``,
``brackets``, ``stdlib_docs``, ``lm``, or ``seq2seq`` / ``classification`` for your own JSON Lines
files), each standing for a ``zoo fit`` data module and its options (``TaskSpec.data``). The data
itself is zoo fit's: the synthetic tasks and the built-in corpus are built-in data of
``InstructionDataModule``, ``LabelledTextDataModule`` and ``TextDataModule``; splits are
deterministic per seed and disjoint, and every family shares one tokenizer per task and seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from zoo.data.synthetic import SyntheticSplits

TaskKind = Literal["seq2seq", "classification", "lm"]
#: The zoo fit data module of each kind of task.
DATA_MODULES: dict[str, str] = {"seq2seq": "zoo.data.InstructionDataModule",
                                "classification": "zoo.data.LabelledTextDataModule", "lm": "zoo.data.TextDataModule"}


@dataclass
class TaskSpec:
    """Options every task shares.

    Args:
        name: The task's name in tables and plots (default: its type).
    """

    name: str = ""
    type: ClassVar[str]
    kind: ClassVar[TaskKind]
    #: What the test split measures, when it is not just held-out data (printed under tables).
    test_note: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.type
        for key, value in self.options().items():
            if isinstance(value, int) and not isinstance(value, bool) and key != "name" and value < 1:
                raise ValueError(f"task {self.name!r}: {key}={value!r} must be a positive integer")

    def data_args(self) -> dict[str, Any]:
        """The data module's ``init_args`` for these options (batch sizes, seed and lengths apart)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The options as plain values."""
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass
class _SyntheticTask(SyntheticSplits, TaskSpec):
    """Options of the generated tasks: the sizes and lengths of ``zoo.data.synthetic.SyntheticSplits``
    (null lengths: the task's defaults; the test split is longer than training)."""

    kind: ClassVar[TaskKind] = "seq2seq"
    #: Every target as long as its source: an encoder (which fills one [MASK] per source token) can run it.
    equal_length: ClassVar[bool] = True
    test_note: ClassVar[str] = (
        "Test inputs are longer than any training input: the test columns measure length generalisation."
    )

    def data_args(self) -> dict[str, Any]:
        synthetic = {k: v for k, v in self.options().items() if k not in ("type", "name") and v is not None}
        return {"builtin": self.type, "synthetic": synthetic, "tokenizer": "char"}


@dataclass
class CopyTask(_SyntheticTask):
    """``copy``: the target repeats the source (16 letters)."""

    type: ClassVar[str] = "copy"


@dataclass
class ReverseTask(_SyntheticTask):
    """``reverse``: the target is the source backwards."""

    type: ClassVar[str] = "reverse"


@dataclass
class SortTask(_SyntheticTask):
    """``sort``: the target is the source's characters in sorted order."""

    type: ClassVar[str] = "sort"


@dataclass
class AdditionTask(_SyntheticTask):
    """``addition``: the source is ``a+b`` (the longer operand has min_len..max_len digits, default
    1..4), the target their sum in decimal."""

    type: ClassVar[str] = "addition"
    equal_length: ClassVar[bool] = False


@dataclass
class BracketsTask(_SyntheticTask):
    """``brackets``: is a string of ``()`` and ``[]`` balanced (default 2..16 characters)? Half of
    every split is; the rest are near misses (two brackets swapped or one changed)."""

    type: ClassVar[str] = "brackets"
    kind: ClassVar[TaskKind] = "classification"


@dataclass
class StdlibDocsTask(TaskSpec):
    """Which part of the Python documentation does a passage come from? Five classes from the
    built-in corpus (``zoo.data.classification``), documents split so a document's passages never
    straddle splits.

    Args:
        train_per_class: At most this many training passages per class (balances the classes).
        eval_per_class: At most this many validation and test passages per class.
        tokenizer: ``sentencepiece`` (trained on the training passages) or ``char``.
        vocab_size: SentencePiece vocabulary size.
    """

    train_per_class: int = 500
    eval_per_class: int = 40
    tokenizer: str = "sentencepiece"
    vocab_size: int = 1000
    type: ClassVar[str] = "stdlib_docs"
    kind: ClassVar[TaskKind] = "classification"

    def data_args(self) -> dict[str, Any]:
        return {"builtin": "python_docs", "builtin_train_per_class": self.train_per_class,
                "builtin_eval_per_class": self.eval_per_class, "tokenizer": self.tokenizer,
                "vocab_size": self.vocab_size}


@dataclass
class LanguageModelingTask(TaskSpec):
    """Language modelling (zoo fit's causal LM: decoder families) on the built-in corpus or your
    text files, packed into blocks. Metrics: perplexity and bits per byte of every predicted token
    of the held-out blocks.

    Args:
        files: Text (.txt, one document per line), JSON Lines or parquet files: a path, a list, or
            a mapping with ``train`` and optionally ``validation``. None: the built-in corpus.
        text_field: Field holding the text in JSON / parquet files.
        block_len: Tokens per block.
        val_blocks: Held-out blocks validation scores (the first ones); test scores the next as many
            (or as many as remain), so choices made on validation are judged on other text.
        val_fraction: Fraction of documents held out when there is no validation file.
        max_documents: Use only the first this many documents (quick runs).
        tokenizer: ``sentencepiece`` (trained on the training split) or ``char``.
        vocab_size: SentencePiece vocabulary size.
    """

    files: str | list[str] | dict[str, Any] | None = None
    text_field: str = "text"
    block_len: int = 128
    val_blocks: int = 64
    val_fraction: float = 0.05
    max_documents: int | None = None
    tokenizer: str = "sentencepiece"
    vocab_size: int = 2000
    type: ClassVar[str] = "lm"
    kind: ClassVar[TaskKind] = "lm"
    test_note: ClassVar[str] = ("The test columns score the `val_blocks` held-out blocks after those validation scores "
                                "(zoo fit's `eval_blocks`): a choice made on validation is judged on other text.")

    def data_args(self) -> dict[str, Any]:
        args = {"objective": "clm", "data_files": self.files, "text_field": self.text_field,
                "max_seq_len": self.block_len, "val_fraction": self.val_fraction,
                "max_documents": self.max_documents, "tokenizer": self.tokenizer, "vocab_size": self.vocab_size,
                "eval_blocks": self.val_blocks}
        return {k: v for k, v in args.items() if v is not None}


@dataclass
class _JsonlTask(TaskSpec):
    """Your own examples from JSON Lines (or CSV / parquet) files.

    Args:
        files: A path or glob (train, with ``val_fraction`` held out), a list, or a mapping with
            ``train`` and optionally ``validation`` and ``test`` (without a test file, the test
            columns score validation).
        tokenizer: ``char`` or ``sentencepiece`` (trained on the training texts).
        vocab_size: SentencePiece vocabulary size.
        val_fraction: Fraction of training records held out for validation when there is no validation file.
    """

    files: str | list[str] | dict[str, Any] = ""
    tokenizer: str = "char"
    vocab_size: int = 1000
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.files:
            raise ValueError(f"task {self.name!r}: a {self.type} task needs files (a JSON Lines path or "
                             f"a mapping with 'train' and optionally 'validation' / 'test')")

    def data_args(self) -> dict[str, Any]:
        return {"data_files": self.files, "tokenizer": self.tokenizer, "vocab_size": self.vocab_size,
                "val_fraction": self.val_fraction, **self.field_args()}

    def field_args(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class JsonlSeq2SeqTask(_JsonlTask):
    """``seq2seq``: your source → target pairs (``InstructionDataModule``).

    Args:
        source_field: Field holding the source text.
        target_field: Field holding the target text.
    """

    source_field: str = "source"
    target_field: str = "target"
    type: ClassVar[str] = "seq2seq"
    kind: ClassVar[TaskKind] = "seq2seq"
    equal_length: ClassVar[bool] = False  # an encoder runs it only if every pair is (checked on the data)

    def field_args(self) -> dict[str, Any]:
        return {"prompt_field": self.source_field, "response_field": self.target_field}


@dataclass
class JsonlClassificationTask(_JsonlTask):
    """``classification``: your text → label examples (``LabelledTextDataModule``); labels are any
    JSON scalars, classes those of the training split.

    Args:
        text_field: Field holding the text.
        label_field: Field holding the label.
    """

    text_field: str = "text"
    label_field: str = "label"
    type: ClassVar[str] = "classification"
    kind: ClassVar[TaskKind] = "classification"

    def field_args(self) -> dict[str, Any]:
        return {"text_field": self.text_field, "label_field": self.label_field}


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
