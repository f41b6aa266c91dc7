"""The comparison's data plumbing: what a task spec builds (``TaskData``), the split and tokenizer
every task shares, JSON Lines files, and the batches of one DataModule.

Batches are family-neutral (``zoo.compare.adapters`` turns them into each family's inputs), with
masks True at real tokens:

- seq2seq: ``source_ids``, ``source_mask`` (b, s); ``target_ids``, ``target_mask`` (b, t);
  ``target_text`` (list of b strings, for exact match and character error rate).
- classification: ``input_ids``, ``attention_mask`` (b, t); ``labels`` (b,).
- lm: ``input_ids`` (b, t), full blocks of packed documents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from zoo.data.objectives import pad_sequences
from zoo.data.splits import assign_splits
from zoo.data.tokenizers import Tokenizer, cached_tokenizer_file, check_tokenizer_kind, load_tokenizer

TaskKind = Literal["seq2seq", "classification", "lm"]
SPLITS = ("train", "validation", "test")


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


def seq2seq_data(name: str, pairs: Mapping[str, list[tuple[str, str]]], tokenizer: Tokenizer) -> TaskData:
    """``TaskData`` of ``(source, target)`` string pairs per split."""
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


def classification_data(
    name: str, items: Mapping[str, list[tuple[str, int]]], tokenizer: Tokenizer, labels: tuple[str, ...]
) -> TaskData:
    """``TaskData`` of ``(text, label id)`` pairs per split."""
    examples = {
        split: [{"input_ids": ids, "label": label}
                for ids, (_, label) in zip(tokenizer.encode_batch([t for t, _ in pairs]), pairs, strict=True)]
        for split, pairs in items.items()
    }
    return TaskData(name, "classification", tokenizer, examples, label_names=labels)


# ---------------------------------------------------------------------------------------------
# Splits and tokenizers: the ones ``zoo fit`` uses, with the comparison's one-line errors


def split_keys(keys: Sequence[str], seed: int, fractions: Mapping[str, float], what: str) -> list[str]:
    """The split of each key (``zoo.data.splits.assign_splits``: by a hash of the key and seed, so
    equal keys never straddle splits), failing in one line if a split ends up empty."""
    out = assign_splits(keys, seed, fractions)
    for split in ("train", *fractions):
        if split not in out:
            raise ValueError(
                f"{what}: {len(set(keys))} distinct item(s) leave the {split} split empty; add data or raise "
                f"val_fraction / test_fraction"
            )
    return out


def held_out_fractions(given: Mapping[str, Any], val_fraction: float, test_fraction: float) -> dict[str, float]:
    """Fractions of the splits that must be cut from train (those not given as files)."""
    wanted = {"validation": val_fraction, "test": test_fraction}
    return {split: fraction for split, fraction in wanted.items() if split not in given}


def build_tokenizer(
    kind: str, texts: Sequence[str], vocab_size: int, cache_dir: str | os.PathLike[str] | None
) -> Tokenizer:
    """A character tokenizer over ``texts`` or a SentencePiece model trained on them, from the
    tokenizer cache ``zoo fit`` uses (no span sentinels: no comparison task needs them)."""
    check_tokenizer_kind(kind)
    if cache_dir is None:
        from zoo.data.datamodule import default_cache_dir

        cache_dir = default_cache_dir()
    path = cached_tokenizer_file(texts, cache_dir, kind=kind, vocab_size=vocab_size, num_sentinels=0)
    return load_tokenizer(path)


# ---------------------------------------------------------------------------------------------
# Your own files


def normalise_files(task: str, files: Any) -> dict[str, list[str]]:
    """``files:`` of a task — a path, or a mapping with ``train`` and optionally ``validation`` /
    ``test`` — as split → paths, every path checked to exist."""
    if isinstance(files, (str, os.PathLike)):
        files = {"train": [files]}
    if not isinstance(files, dict) or "train" not in files or set(files) - set(SPLITS):
        raise ValueError(
            f"task {task!r}: files must be a path or a mapping with 'train' and optionally 'validation' and "
            f"'test', got {files!r}"
        )
    out = {
        split: [os.fspath(p) for p in (paths if isinstance(paths, list) else [paths])]
        for split, paths in files.items()
    }
    for paths in out.values():
        for path in paths:
            if not Path(path).expanduser().is_file():
                raise FileNotFoundError(f"task {task!r}: data file {path!r} does not exist")
    return out


def read_jsonl(path: str, fields: Mapping[str, str], task: str) -> list[dict[str, Any]]:
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
    """``collate`` bound to a kind and pad id (a class, not a lambda, so workers can pickle it)."""

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
        """Batches of ``split``; ``shuffle`` reshuffles each epoch from the seed."""
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
