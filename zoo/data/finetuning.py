"""What the fine-tuning data modules share (``LabelledTextDataModule``, ``InstructionDataModule``):
the tokenizer, splits held in memory, loaders, the family shape the batches are made for, and the
checkpoint entry that records all of it.

Fine-tuning sets are small (thousands of short examples), so they are read and tokenized in
``setup`` in a second or two, without an on-disk cache. How an example becomes model input (which
special tokens, where the loss applies) depends on the family's shape, which the data module takes
from the model being trained (``shape="auto"``) or from its argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from zoo.data.datamodule import SeededSampler, ignore_stop_signals, writable_cache_dir
from zoo.data.records import BadRecords, check_bad_records
from zoo.data.splits import assign_splits
from zoo.data.tokenizers import (
    NUM_SENTINELS,
    Tokenizer,
    TokenizerKind,
    TokenizerTrainingError,
    cached_tokenizer_file,
    check_tokenizer_kind,
    load_tokenizer,
    tokenizer_state,
)
from zoo.models.registry import Shape

ShapeChoice = Literal["auto", "encoder", "decoder", "encoder-decoder"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")


def split_by_hash(items: list[Any], key: Callable[[Any], str], val_fraction: float, seed: int) -> dict[str, list[Any]]:
    """Train and validation from one list, each item placed by a hash of ``key(item)`` and ``seed``
    (``zoo.data.splits``): equal texts never straddle the splits."""
    where = assign_splits([key(item) for item in items], seed, {"validation": val_fraction})
    out: dict[str, list[Any]] = {"train": [], "validation": []}
    for item, split in zip(items, where, strict=True):
        out[split].append(item)
    if not out["train"] or not out["validation"]:
        raise ValueError(f"cannot split {len(items)} example(s) into train and validation with val_fraction="
                         f"{val_fraction}; add data, change val_fraction or give a 'validation' file")
    return out


class FineTuneDataModule(L.LightningDataModule):
    """Base of the fine-tuning data modules (not used directly).

    Args:
        tokenizer: ``sentencepiece`` (trained on the training split and cached) or ``char``.
        tokenizer_path: An existing tokenizer file (.model or .json) instead of training one. With
            ``--model.init_args.pretrained`` a zoo checkpoint's own tokenizer is filled in here.
        vocab_size: SentencePiece vocabulary size when training one.
        max_seq_len: Longest model input in tokens, special tokens included; longer text is cut.
        batch_size: Examples per training batch.
        eval_batch_size: Examples per validation / test / predict batch; null = ``batch_size``.
        num_workers: DataLoader worker processes.
        val_fraction: Share of the training examples held out when the data has no validation split.
        seed: Seeds the split and the shuffling.
        max_documents: Use at most the first this many examples of each split (quick runs; named as in
            ``TextDataModule``, so ``configs/debug/smoke.yaml`` stacks onto every config).
        shape: The family shape the batches are made for: ``auto`` = the model being trained
            (read from the Trainer), or ``encoder``, ``decoder``, ``encoder-decoder``.
        bad_records: What a record with a missing, null, empty or wrongly typed field (or a line that
            is not JSON, a CSV row with too many fields) does: ``error`` stops with one line naming
            the file, line and field; ``skip`` leaves it out and says per file how many were skipped
            and why (pandas' ``on_bad_lines``).
        cache_dir: Where tokenizers are cached; default $ZOO_CACHE_DIR, else ~/.cache/zoo. Checked
            writable when the data module is built.
    """

    def __init__(
        self,
        tokenizer: TokenizerKind = "sentencepiece",
        tokenizer_path: str | None = None,
        vocab_size: int = 2000,
        max_seq_len: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 1234,
        max_documents: int | None = None,
        shape: ShapeChoice = "auto",
        bad_records: BadRecords = "error",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_tokenizer_kind(tokenizer)
        checks = {
            f"vocab_size={vocab_size} must be >= 1": vocab_size >= 1,
            f"max_seq_len={max_seq_len} must be >= 4": max_seq_len >= 4,
            f"batch_size={batch_size} must be >= 1": batch_size >= 1,
            f"eval_batch_size={eval_batch_size} must be >= 1 or null": eval_batch_size is None or eval_batch_size >= 1,
            f"num_workers={num_workers} must be >= 0": num_workers >= 0,
            f"val_fraction={val_fraction} must be in (0, 1)": 0 < val_fraction < 1,
            f"max_documents={max_documents} must be >= 1 or null": max_documents is None or max_documents >= 1,
            f"shape={shape!r} must be one of auto, encoder, decoder, encoder-decoder":
                shape in ("auto", "encoder", "decoder", "encoder-decoder"),
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(message)
        check_bad_records(bad_records)
        if tokenizer_path is not None and not Path(tokenizer_path).expanduser().is_file():
            raise FileNotFoundError(f"tokenizer_path {tokenizer_path!r} does not exist")
        self.bad_records: BadRecords = bad_records
        self.tokenizer_kind, self.tokenizer_path, self._requested_vocab_size = tokenizer, tokenizer_path, vocab_size
        self.max_seq_len, self.batch_size = max_seq_len, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.val_fraction, self.seed = num_workers, val_fraction, seed
        self.max_documents, self.requested_shape = max_documents, shape
        self.cache_dir = writable_cache_dir(cache_dir)  # before any work: names the setting to change
        self._splits: dict[str, list[Any]] | None = None
        self._all_train: list[Any] = []
        self._encoded: dict[str, list[Any]] = {}
        self._tokenizer: Tokenizer | None = None
        self._tokenizer_file: Path | None = None

    #: Span sentinels a tokenizer trained here reserves (the character-level synthetic tasks need none).
    num_sentinels: int = NUM_SENTINELS

    # Subclasses -------------------------------------------------------------------------------
    def _read_splits(self) -> dict[str, list[Any]]:
        """The raw examples per split (``train``, ``validation``, optionally ``test``), checked."""
        raise NotImplementedError

    def _tokenizer_texts(self, train: list[Any]) -> list[str]:
        """Texts of the training examples that a new tokenizer is trained on."""
        raise NotImplementedError

    def _encode(self, examples: list[Any]) -> list[Any]:
        """Examples with their texts as token ids (no special tokens)."""
        raise NotImplementedError

    def _collator(self, shape: Shape) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def format_state(self) -> dict[str, Any]:
        """What ``zoo generate`` / ``zoo predict`` need to know about the trained format (plain values)."""
        return {}

    # Examples and tokenizer -------------------------------------------------------------------
    def raw_examples(self, split: str) -> list[Any]:
        """The examples of ``split`` before tokenization (``max_documents`` applied)."""
        if self._splits is None:
            splits = self._read_splits()
            self._all_train = splits["train"]  # a new tokenizer learns from all of it, max_documents or not
            self._splits = {name: items[: self.max_documents] for name, items in splits.items()}
        if split not in self._splits:
            raise ValueError(f"the data has no {split!r} split; it has {sorted(self._splits)}")
        return self._splits[split]

    @property
    def tokenizer(self) -> Tokenizer:
        """Loaded from ``tokenizer_path``, or trained on the training split and cached."""
        if self._tokenizer is None:
            if self.tokenizer_path is not None:
                path = Path(self.tokenizer_path).expanduser()
            else:
                self.raw_examples("train")
                try:
                    path = cached_tokenizer_file(self._tokenizer_texts(self._all_train), self.cache_dir,
                                                 kind=self.tokenizer_kind, vocab_size=self._requested_vocab_size,
                                                 num_sentinels=self.num_sentinels)
                except TokenizerTrainingError as error:
                    files = getattr(self, "_files", None)
                    where = repr(files["train"][0]) if files else "the built-in task"
                    raise TokenizerTrainingError(f"training a tokenizer on {where}: {error}") from None
            self._tokenizer, self._tokenizer_file = load_tokenizer(path), path
            size, trained = self._tokenizer.vocab_size, self.tokenizer_path is None
            if trained and self.tokenizer_kind == "sentencepiece" and size < self._requested_vocab_size:
                rank_zero_warn(f"vocab_size={self._requested_vocab_size} is more than the training examples support; "
                               f"trained the most they do, {size} (pass --data.init_args.vocab_size {size} to say so)")
        return self._tokenizer

    @property
    def tokenizer_file(self) -> Path:
        _ = self.tokenizer
        assert self._tokenizer_file is not None
        return self._tokenizer_file

    @property
    def tokenizer_fingerprint(self) -> str:
        """Hash of the tokenizer; checkpoints record it to catch a data/model mismatch."""
        return self.tokenizer.fingerprint

    # The values `zoo fit` links into the model config.
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    @property
    def bos_id(self) -> int:
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    def shape(self) -> Shape:
        """The family shape batches are made for: the argument, or the model the Trainer trains."""
        if self.requested_shape != "auto":
            return self.requested_shape
        module = self.trainer.lightning_module if self.trainer is not None else None
        family = getattr(type(module), "family", None)
        if family is None:
            raise ValueError(f"{type(self).__name__}(shape='auto') takes the shape from a zoo task being "
                             "trained; outside a Trainer pass shape='encoder', 'decoder' or 'encoder-decoder'")
        return family.shape

    def encoded(self, split: str) -> list[Any]:
        """The examples of ``split`` with token ids (tokenized once, then kept)."""
        if split not in self._encoded:
            self._encoded[split] = self._encode(self.raw_examples(split))
        return self._encoded[split]

    # Lightning hooks --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Train (or find in the cache) the tokenizer once, before the ranks set up."""
        _ = self.tokenizer

    def setup(self, stage: str | None = None) -> None:
        """Read, check and tokenize the splits the stage needs (a bad label or field fails here,
        before any step)."""
        for split in ("train", "validation") if stage in (None, "fit") else ("validation",):
            self.encoded(split)

    @property
    def predict_split(self) -> str:
        """``zoo predict`` reads the test split when the data has one, else validation."""
        self.raw_examples("train")
        assert self._splits is not None
        return "test" if "test" in self._splits else "validation"

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self._indexed(split), batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self._collator(self.shape()), num_workers=self.num_workers,
                          worker_init_fn=ignore_stop_signals)

    def _indexed(self, split: str) -> list[tuple[int, Any]]:
        # Each example carries its position, so predictions can say which example they score.
        return list(enumerate(self.encoded(split)))

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled training batches, each epoch's order drawn from (seed, epoch) by ``SeededSampler``,
        so a resumed run repeats the uninterrupted one's order exactly (a shuffling generator's state
        is not in the checkpoint: a resume at an epoch's end redrew the first epoch's order)."""
        examples = self._indexed("train")
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        return StatefulDataLoader(_ByIndex(examples), batch_size=self.batch_size,
                                  sampler=SeededSampler(examples, num_replicas=world_size, rank=rank, seed=self.seed),
                                  collate_fn=self._collator(self.shape()), num_workers=self.num_workers,
                                  worker_init_fn=ignore_stop_signals)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        """The test split when the data has one, else validation."""
        return self._loader(self.predict_split)

    def predict_dataloader(self) -> DataLoader:
        """What ``zoo predict`` writes a line for: the test split when there is one, else validation."""
        return self._loader(self.predict_split)

    # Checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The tokenizer (file, fingerprint, size) and the trained format, for reloads and ``zoo generate``."""
        return {**tokenizer_state(self.tokenizer, self.tokenizer_file), **self.format_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint trained with another tokenizer."""
        fingerprint, vocab_size = state_dict.get("tokenizer_fingerprint"), state_dict.get("vocab_size")
        if (fingerprint, vocab_size) != (self.tokenizer.fingerprint, self.vocab_size):
            raise ValueError(
                f"checkpoint tokenizer (fingerprint {fingerprint}, vocab_size {vocab_size}) differs from the data's "
                f"({self.tokenizer.fingerprint}, {self.vocab_size}); pass --data.init_args.tokenizer_path "
                f"{state_dict.get('tokenizer_file', 'with the tokenizer the checkpoint was trained with')}"
            )


class _ByIndex(torch.utils.data.Dataset):
    """Examples read by ``SeededSampler``'s ``(index, seed)`` keys (fine-tuning draws nothing per example)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.items[int(key[0])]


def truncate(ids: Sequence[int], room: int) -> list[int]:
    """The first ``room`` ids (at least none)."""
    return list(ids[: max(room, 0)])
