"""`TextDataModule`: text in, batches for the MLM, causal-LM or span-corruption objective out.

Life cycle, as Lightning intends:

- `__init__` checks every argument and data file, so mistakes fail before anything is built.
- The `tokenizer` property (and `vocab_size`, `pad_id`, ... built on it) loads or trains the
  tokenizer on first access. LightningCLI reads them right after instantiation to size the model.
- `prepare_data` (one process per node) streams the corpus once through the tokenizer into token
  shards on disk (`zoo.data.shards`: one flat uint16/uint32 file per split, documents split by a
  hash of their text); `setup` (every process) memory-maps them and reads blocks as slices, so
  memory stays flat in the corpus size. Shards are keyed by the tokenizer fingerprint, the files
  and the split settings (not the objective: blocks are cut when read), so a second run starts in
  about a second.
- Objectives that are random (MLM masking, span corruption) run in the collator, so every epoch
  sees fresh masks while validation sees the same ones each time.
- Training batches come from a `torchdata` `StatefulDataLoader` over a `SeededSampler`: the order
  and every example's mask seed are functions of (seed, epoch, rank, position), and the loader's
  position is part of each checkpoint (Lightning's fit loop saves and restores it), so a resumed run
  continues with exactly the batches — and masks — the uninterrupted run would have seen. The order
  is a keyed permutation computed per position (`BlockPermutation`), so memory does not grow with the
  number of blocks and a resume jumps straight to its place.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from filelock import FileLock
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from zoo.data.corpus import (
    DATA_FORMATS,
    DataFiles,
    DataFormat,
    SampleBy,
    builtin_corpus,
    documents_fingerprint,
    files_key,
    resolve_data_files,
    stream_splits,
)
from zoo.data.objectives import (
    SEED_KEY,
    CLMCollator,
    MLMCollator,
    SpanCorruptionCollator,
    mix_seeds,
    span_corruption_lengths,
    span_corruption_raw_length,
)
from zoo.data.records import BadRecords, check_bad_records
from zoo.data.shards import SHARD_VERSION, TokenBlocks, check_meta, read_meta, write_shards
from zoo.data.splits import unit_hash
from zoo.data.tempfiles import remove_stale_temporaries
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
from zoo.files import file_identity

Objective = Literal["mlm", "clm", "span"]
Split = Literal["train", "validation"]

# Shard size estimate per input byte: a token per byte at worst (char, or SentencePiece's byte
# fallback) plus eos; parquet is compressed, so allow for a few times its size.
_PARQUET_EXPANSION = 4


def default_cache_dir() -> Path:
    """`$ZOO_CACHE_DIR`, else `~/.cache/zoo`."""
    return Path(os.environ.get("ZOO_CACHE_DIR") or Path.home() / ".cache" / "zoo").expanduser()


def writable_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache directory — `cache_dir`, else `default_cache_dir()` — created and proven writable
    now (a file is created and removed in it), so a read-only or unwritable cache fails before any
    work, in one line naming the directory and the setting to change.

    Raises:
        OSError: (its own subclass: PermissionError, NotADirectoryError, ...) one line.
    """
    path = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if cache_dir:
        setting = "--data.init_args.cache_dir"
    else:
        setting = "$ZOO_CACHE_DIR" if os.environ.get("ZOO_CACHE_DIR") else "$ZOO_CACHE_DIR (unset: ~/.cache/zoo)"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".zoo-write-check-"):
            pass
    except OSError as error:
        raise type(error)(
            f"cache directory {os.fspath(path)!r} (from {setting}) is not writable ({error.strerror or error}); "
            f"set ZOO_CACHE_DIR or --data.init_args.cache_dir to a writable directory"
        ) from None
    return path


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


_MASK64 = (1 << 64) - 1


class BlockPermutation:
    """A keyed permutation of `[0, n)` evaluated at any position in O(1) time and memory.

    A Feistel network (six rounds of a splitmix64 round function, keys from `key`) permutes the
    smallest power-of-two range holding `n`; a value that lands outside `[0, n)` is encrypted again
    until it lands inside ("cycle walking", under two steps on average), which keeps the map a
    bijection of `[0, n)`. `perm(positions)` maps a numpy array of positions at once; no list of
    all `n` indices is ever built, so an epoch of a billion blocks costs what one of ten does.

    Args:
        n: Size of the range, >= 1.
        key: Chooses the permutation (e.g. from the seed and the epoch).
    """

    ROUNDS = 6

    def __init__(self, n: int, key: int) -> None:
        if n < 1:
            raise ValueError(f"BlockPermutation needs n >= 1, got {n}")
        self.n = n
        bits = max(2, (n - 1).bit_length())  # at least 1 bit per half
        self._halves = (bits // 2, bits - bits // 2)  # (high, low) widths; they swap every round
        self._keys = [np.uint64(mix_seeds(key, round_) & _MASK64) for round_ in range(self.ROUNDS)]

    @staticmethod
    def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
        z = x ^ key  # splitmix64's finaliser: every input bit reaches every output bit
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        high, low = self._halves
        for key in self._keys:
            left, right = x >> np.uint64(low), x & np.uint64((1 << low) - 1)
            mixed = left ^ (self._mix(right, key) & np.uint64((1 << high) - 1))
            x = (right << np.uint64(high)) | mixed  # (right, mixed): an invertible step
            high, low = low, high
        return x

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The permuted values of `positions` (each in `[0, n)`), as int64."""
        x = self._encrypt(np.asarray(positions, dtype=np.uint64))
        outside = x >= np.uint64(self.n)
        while outside.any():
            x[outside] = self._encrypt(x[outside])
            outside = x >= np.uint64(self.n)
        return x.astype(np.int64)


def ignore_stop_signals(worker_id: int) -> None:
    """A data loader worker ignores SIGINT and SIGTERM: a signal to the whole process group (Ctrl+C in a
    terminal, SLURM's scancel) would otherwise kill the workers, and the training process would crash on
    its next batch instead of stopping cleanly after the step (``zoo.callbacks.GracefulStop``). The
    workers still end with the training process (PyTorch's watchdog, and shutdown)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class SeededSampler(DistributedSampler):
    """Training order that a resumed run repeats exactly: yields `(index, seed)` pairs.

    Each epoch is a fresh shuffle: position `p` of the epoch reads block `perm(p)` of a
    `BlockPermutation` keyed by (seed, epoch), computed when it is needed — memory stays flat
    whatever the number of blocks, and a resume starts at its position without replaying the ones
    before it. The epoch is split across ranks as `DistributedSampler` does (so Lightning leaves it
    in place under DDP): rank `r` of `w` reads positions `r, r + w, r + 2w, ...`, the last ones
    wrapping to the start of the order so every rank gets `ceil(n / w)`. Each example comes with a
    seed for the collator's random masks, drawn from (seed, epoch, rank, position). Nothing depends
    on generator state carried between batches, so the whole state is the epoch and how many
    examples this pass has yielded: `state_dict` returns both, and `StatefulDataLoader` (with it,
    every Lightning checkpoint) saves them. Lightning calls `set_epoch` each epoch; iterated by hand,
    the epoch advances after each complete pass, so every pass has fresh order and masks.
    """

    #: Positions computed per numpy call: a few hundred kB, amortising the Python overhead.
    CHUNK = 8192

    def __init__(self, dataset: Any, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.yielded = 0
        self._resume_at = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a restored position belongs to the epoch it was taken in
            self._resume_at = 0
        super().set_epoch(epoch)

    def indices(self, start: int, stop: int) -> np.ndarray:
        """The blocks this rank reads at its positions `[start, stop)` of the current epoch."""
        n = len(self.dataset)
        ranks_positions = np.arange(start, stop, dtype=np.int64) * self.num_replicas + self.rank
        return BlockPermutation(n, mix_seeds(self.seed, self.epoch))(ranks_positions % n)

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        self.yielded = start
        for first in range(start, self.num_samples, self.CHUNK):
            for index in self.indices(first, min(first + self.CHUNK, self.num_samples)).tolist():
                seed = mix_seeds(self.seed, self.epoch, self.rank, self.yielded)
                self.yielded += 1
                yield index, seed
        self.epoch, self.yielded = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Continue where `state_dict` was taken: the next pass starts at its position."""
        self.epoch, self._resume_at = int(state_dict["epoch"]), int(state_dict["yielded"])
        if self._resume_at >= self.num_samples:  # taken after the last batch: the next pass is a new epoch
            self.epoch, self._resume_at = self.epoch + 1, 0


class _SeededExamples(Dataset):
    """A tokenized dataset read with `SeededSampler`'s `(index, seed)` keys: each example gets its seed."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        return {**self.dataset[int(index)], SEED_KEY: seed}

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[dict[str, Any]]:
        return [self[key] for key in keys]  # each block is one slice of the memory map


class TextDataModule(L.LightningDataModule):
    """Text corpus -> tokenizer -> pretraining batches for one of three objectives.

    Batches are dicts of tensors; masks are bool with True = real token (attend to it):

    - mlm: `input_ids`, `attention_mask`, `labels` (b, t); labels are -100 where not predicted.
    - clm: `input_ids`, `labels` (b, t), labels == input_ids (the loss shifts); blocks are full,
      so there is no padding and no mask.
    - span: `input_ids`, `attention_mask` (b, s); `labels`, `decoder_input_ids`,
      `decoder_attention_mask` (b, t); labels are -100 at padding, decoder inputs are labels
      shifted right behind pad (T5's decoder start token).

    Args:
        objective: "mlm" (BERT masked LM), "clm" (GPT next-token LM on packed blocks) or "span"
            (T5 span corruption).
        data_files: Local text (.txt, see sample_by), JSON / JSON Lines (.json, .jsonl), CSV or
            parquet files: one path, directory or glob, a list, or a dict with "train" and
            optionally "validation". None uses the built-in corpus (Python's own documentation).
        sample_by: What one document of a .txt file is: a "line", a "paragraph" (text between
            blank lines) or the whole file ("document", e.g. Tiny Shakespeare: blocks then run
            across line breaks).
        data_format: "text", "json", "csv" or "parquet"; inferred from file extensions when None.
        text_field: Field / column holding the text in JSON, CSV and parquet files.
        bad_records: What a record whose text_field is missing, null or not a string (or a line
            that is not JSON, a CSV row with too many fields) does: "error" stops with one line
            naming the file, line and field; "skip" leaves it out and says at the end of the pass,
            per file, how many were skipped and why (pandas' on_bad_lines).
        dataset_name: A Hugging Face Hub dataset (or a local dataset directory, e.g. of parquet
            files) instead of data_files (a hub name needs the network or a warm cache).
        streaming: Stream dataset_name (an iterable dataset) instead of preparing it in
            `datasets`' cache first; local files always stream.
        tokenizer: "sentencepiece" (trained on the training split and cached) or "char".
        tokenizer_path: An existing tokenizer file (.model or .json) to use instead of training
            one, e.g. the one a checkpoint was trained with.
        vocab_size: SentencePiece vocabulary size, specials included; a corpus too small for it
            gets the largest vocabulary it supports, with a warning naming the number. Ignored
            when tokenizer_path is given or tokenizer is "char"; read the `vocab_size` property
            for the real size.
        max_seq_len: Tokens per sequence: block length for clm, [CLS] + text + [SEP] for mlm,
            encoder input length (after corruption, eos included) for span.
        batch_size: Sequences per batch.
        num_workers: DataLoader worker processes.
        val_fraction: Fraction of documents held out for validation when the data has no
            validation split, in (0, 1). Each document goes by a hash of its text; when that
            leaves a side empty (a small corpus), the document nearest the cut moves over, so any
            corpus of two or more distinct documents splits.
        seed: Seeds the split, shuffling and the random masks.
        mlm_probability: Fraction of tokens the mlm objective predicts, in (0, 1).
        noise_density: Fraction of tokens the span objective corrupts, in (0, 1).
        mean_noise_span_length: Mean corrupted span length for the span objective, >= 1.
        max_documents: Use only the first this many documents (before the train/validation
            split; a given validation split is capped separately), for quick runs.
        cache_dir: Where tokenizers and tokenized data are cached; default $ZOO_CACHE_DIR, else
            ~/.cache/zoo. Checked writable when the data module is built.
    """

    def __init__(
        self,
        objective: Objective = "clm",
        data_files: DataFiles | None = None,
        data_format: DataFormat | None = None,
        sample_by: SampleBy = "line",
        text_field: str = "text",
        bad_records: BadRecords = "error",
        dataset_name: str | None = None,
        streaming: bool = False,
        tokenizer: TokenizerKind = "sentencepiece",
        tokenizer_path: str | None = None,
        vocab_size: int = 8000,
        max_seq_len: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.05,
        seed: int = 1234,
        mlm_probability: float = 0.15,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        max_documents: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        _check(
            objective in ("mlm", "clm", "span"),
            f"objective must be one of ['clm', 'mlm', 'span'], got {objective!r}",
        )
        check_tokenizer_kind(tokenizer)
        _check(vocab_size >= 1, f"vocab_size must be >= 1, got {vocab_size}")
        min_len = {"clm": 2, "mlm": 3, "span": 4}[objective]
        _check(
            max_seq_len >= min_len,
            f"max_seq_len must be >= {min_len} for objective {objective!r}, got {max_seq_len}",
        )
        _check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        _check(num_workers >= 0, f"num_workers must be >= 0, got {num_workers}")
        _check(0 < val_fraction < 1, f"val_fraction must be in (0, 1), got {val_fraction}")
        _check(0 < mlm_probability < 1, f"mlm_probability must be in (0, 1), got {mlm_probability}")
        _check(0 < noise_density < 1, f"noise_density must be in (0, 1), got {noise_density}")
        _check(
            mean_noise_span_length >= 1,
            f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}",
        )
        _check(
            max_documents is None or max_documents >= 2,
            f"max_documents must be None or >= 2 (train and validation), got {max_documents}",
        )
        _check(
            data_files is None or dataset_name is None,
            "pass either data_files or dataset_name, not both",
        )
        _check(
            sample_by in ("line", "paragraph", "document"),
            f"sample_by must be one of ['document', 'line', 'paragraph'], got {sample_by!r}",
        )
        check_bad_records(bad_records)
        if data_files is not None:
            # Checks every file now (missing, empty, not UTF-8, no text_field): fail before work.
            self._files, self._format = resolve_data_files(data_files, data_format, text_field)
        else:
            _check(
                data_format is None or data_format in DATA_FORMATS,
                f"data_format must be one of {sorted(DATA_FORMATS)} or None, got {data_format!r}",
            )
            self._files, self._format = None, data_format
        if tokenizer_path is not None and not Path(tokenizer_path).expanduser().is_file():
            raise FileNotFoundError(f"tokenizer_path {tokenizer_path!r} does not exist")
        if objective == "span" and tokenizer_path is None:
            # Tokenizers trained here reserve NUM_SENTINELS; a loaded one is checked in setup.
            self._span_chunk_length(max_seq_len, noise_density, mean_noise_span_length, NUM_SENTINELS)
        self.save_hyperparameters()

        # Before any work: a read-only or unwritable cache fails here, naming the setting.
        self.cache_dir = writable_cache_dir(cache_dir)
        self.objective: Objective = objective
        self.text_field = text_field
        self.bad_records: BadRecords = bad_records
        self.sample_by: SampleBy = sample_by
        self.dataset_name = dataset_name
        self.streaming = streaming
        self.tokenizer_kind = tokenizer
        self.tokenizer_path = tokenizer_path
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.seed = seed
        self.mlm_probability = mlm_probability
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length
        self.max_documents = max_documents
        self._requested_vocab_size = vocab_size

        self._tokenizer: Tokenizer | None = None
        self._tokenizer_file: Path | None = None
        self._datasets: dict[str, Any] = {}
        self._split_at: float | None = None  # the split's hash threshold, once a pass has found it

    # -----------------------------------------------------------------------------------------
    # Tokenizer and the values the model needs (available right after __init__)

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer: loaded from `tokenizer_path`, or trained on the training split and
        cached (loaded from the cache when it exists)."""
        if self._tokenizer is None:
            if self.tokenizer_path is not None:
                path = Path(self.tokenizer_path).expanduser()
            else:
                try:
                    path = cached_tokenizer_file(
                        self._train_texts(),  # streamed, and only read when no cached tokenizer exists
                        self.cache_dir,
                        kind=self.tokenizer_kind,
                        vocab_size=self._requested_vocab_size,
                        corpus_key=self._corpus_key(),
                        expected_chars=self._estimated_bytes(),
                    )
                except TokenizerTrainingError as error:
                    where = self._describe_corpus()
                    raise TokenizerTrainingError(f"training a tokenizer on {where}: {error}") from None
            self._tokenizer = load_tokenizer(path)
            self._tokenizer_file = path
            self._warn_if_vocab_shrank()
        return self._tokenizer

    def _warn_if_vocab_shrank(self) -> None:
        size = self._tokenizer.vocab_size if self._tokenizer is not None else 0
        if self.tokenizer_path is None and self.tokenizer_kind == "sentencepiece" and size < self._requested_vocab_size:
            rank_zero_warn(f"vocab_size={self._requested_vocab_size} is more than {self._describe_corpus()} supports; "
                           f"trained the most it does, {size} (pass --data.init_args.vocab_size {size} to say so)")

    def _describe_corpus(self) -> str:
        if self._files is not None:
            every = [path for paths in self._files.values() for path in paths]
            return repr(every[0]) if len(every) == 1 else f"{len(every)} files ({every[0]!r}, ...)"
        return f"dataset {self.dataset_name!r}" if self.dataset_name else "the built-in corpus"

    @property
    def tokenizer_file(self) -> Path:
        """The file the tokenizer lives in; pass it as `tokenizer_path` to reuse it."""
        _ = self.tokenizer
        assert self._tokenizer_file is not None
        return self._tokenizer_file

    @property
    def vocab_size(self) -> int:
        """The tokenizer's real vocabulary size (size the embedding and the output head by it)."""
        return self.tokenizer.vocab_size

    @property
    def pad_id(self) -> int:
        """Padding id, also T5's decoder start token."""
        return self.tokenizer.pad_id

    @property
    def bos_id(self) -> int:
        """Beginning-of-sequence id."""
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int:
        """End-of-sequence id (also ends each document in packed clm blocks)."""
        return self.tokenizer.eos_id

    @property
    def mask_id(self) -> int:
        """[MASK] id."""
        return self.tokenizer.mask_id

    @property
    def tokenizer_fingerprint(self) -> str:
        """Hash of the tokenizer; checkpoints store it to catch a data/model mismatch."""
        return self.tokenizer.fingerprint

    # -----------------------------------------------------------------------------------------
    # Documents

    def _sources(self) -> dict[str, Any]:
        """Per split the data has, a function streaming its documents (max_documents applied);
        called with where to report skipped records (or None)."""
        if self._files is None and self.dataset_name is None:
            sources: dict[str, Any] = {"train": lambda report=None: iter(builtin_corpus())}
        else:
            sources = stream_splits(
                self._files, self._format, self.text_field, sample_by=self.sample_by,
                dataset_name=self.dataset_name, streaming=self.streaming, cache_dir=self.cache_dir / "datasets",
                bad_records=self.bad_records,
            )
        if self.max_documents is None:
            return sources

        def first(open_: Any, report: Any = None) -> Any:
            stream = open_(report)
            try:
                yield from itertools.islice(stream, self.max_documents)
            finally:  # close the reader now, so it reports what it skipped among the documents read
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        return {split: functools.partial(first, open_) for split, open_ in sources.items()}

    def _pairs(self, threshold: float, stats: dict[str, Any] | None = None, report: Any = None):
        """`(split, document)` in corpus order; without a validation source, a document goes to
        validation when `unit_hash(document, seed) < threshold` (the project's one split rule).
        `report` gets the lines about skipped records (see `bad_records`)."""
        sources = self._sources()
        if "validation" in sources:
            yield from (("train", doc) for doc in sources["train"](report))
            yield from (("validation", doc) for doc in sources["validation"](report))
            return
        for doc in sources["train"](report):
            u = unit_hash(doc, self.seed)
            if stats is not None:  # the extremes, in case one side comes out empty
                stats["min"], stats["max"] = min(stats.get("min", 1.0), u), max(stats.get("max", 0.0), u)
            yield ("validation" if u < threshold else "train"), doc

    def _train_texts(self):
        return (doc for split, doc in self._pairs(self.val_fraction) if split == "train")

    def documents(self, split: Split) -> list[str]:
        """The raw documents of `split` ("train" or "validation") as a list: for small corpora and
        inspection only (training streams them and never builds this list)."""
        if self._split_at is None:
            self._split_at = self._threshold()
        return [doc for where, doc in self._pairs(self._split_at) if where == split]

    def _threshold(self, stats: dict[str, Any] | None = None, counts: dict[str, int] | None = None) -> float:
        """The hash threshold of the split: `val_fraction`, unless that leaves a side empty, when
        the document nearest the cut moves over (as `zoo.data.splits.split_documents` does)."""
        if stats is None or counts is None:
            stats, counts = {}, {"train": 0, "validation": 0}
            for split, _ in self._pairs(self.val_fraction, stats):
                counts[split] += 1
        if "min" not in stats or (counts["train"] and counts["validation"]):
            return self.val_fraction
        total = counts["train"] + counts["validation"]
        _check(
            stats["min"] < stats["max"],
            f"cannot split {'the one document' if total == 1 else f'{total} copies of one document'} of "
            f"{self._describe_corpus()} into train and validation; give a validation file "
            f"(--data.init_args.data_files '{{train: {self._train_name()}, validation: my_validation.txt}}') "
            f"or more documents",
        )
        # No validation: take the lowest hash; no training: give back the highest.
        return float(np.nextafter(stats["min"], 1.0)) if not counts["validation"] else stats["max"]

    def _train_name(self) -> str:
        paths = (self._files or {}).get("train", [])
        return paths[0] if len(paths) == 1 else "my_train.txt"

    def _corpus_key(self) -> str:
        """Identifies the corpus and its split for cache keys, without reading the corpus."""
        if self._files is None and self.dataset_name is None:
            corpus: Any = documents_fingerprint(builtin_corpus())
        elif self.dataset_name is not None:
            corpus = {"dataset": self.dataset_name, "streaming": self.streaming}
        else:
            corpus = {"files": files_key(self._files), "format": self._format}
        settings = {"corpus": corpus, "text_field": self.text_field, "sample_by": self.sample_by,
                    "max_documents": self.max_documents, "val_fraction": self.val_fraction, "seed": self.seed,
                    "bad_records": self.bad_records}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def _estimated_bytes(self) -> int:
        """The corpus size in bytes (an estimate for hub datasets), for sampling and disk checks."""
        if self._files is None:
            if self.dataset_name is None:
                return sum(len(doc.encode()) for doc in builtin_corpus())
            return 1 << 30
        total = sum(os.path.getsize(path) for paths in self._files.values() for path in paths)
        return total * (_PARQUET_EXPANSION if self._format == "parquet" else 1)

    # -----------------------------------------------------------------------------------------
    # Tokenized, packed datasets

    @staticmethod
    def _span_chunk_length(max_seq_len: int, noise_density: float, mean_span: float, sentinels: int) -> int:
        """Raw tokens per span-corruption example, checked against the sentinels available."""
        length = span_corruption_raw_length(max_seq_len, noise_density, mean_span)
        spans = span_corruption_lengths(length, noise_density, mean_span)[2]
        _check(
            spans <= sentinels,
            f"max_seq_len={max_seq_len} needs {spans} span sentinels per sequence but the tokenizer "
            f"has {sentinels}; lower max_seq_len or noise_density, or raise mean_noise_span_length",
        )
        return length

    def _chunk_length(self) -> int:
        """Raw tokens per example before the collator adds specials or corrupts spans."""
        if self.objective == "clm":
            return self.max_seq_len
        if self.objective == "mlm":
            return self.max_seq_len - 2  # room for [CLS] and [SEP]
        return self._span_chunk_length(
            self.max_seq_len, self.noise_density, self.mean_noise_span_length, len(self.tokenizer.sentinel_ids)
        )

    def _shard_directory(self) -> Path:
        settings = {"v": SHARD_VERSION, "tokenizer": self.tokenizer_fingerprint, "corpus": self._corpus_key()}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / "shards" / f"{self.tokenizer_fingerprint}-{key}"

    def _build_shards(self, directory: Path) -> dict[str, Any]:
        """Stream the corpus through the tokenizer into `directory` (see `zoo.data.shards`).

        One pass, unless hashing left a split empty (small corpora only): then the threshold moves
        by one document (`_threshold`) and a second pass writes the shards that are kept; the first
        pass's are discarded before they are ever renamed into place.
        """
        from tqdm.auto import tqdm

        tokenizer = self.tokenizer
        estimate = (self._estimated_bytes() + 1) * 2 * (1 if tokenizer.vocab_size <= 1 << 16 else 2)
        has_validation = "validation" in self._sources()
        threshold = self.val_fraction
        for _attempt in range(2):
            stats: dict[str, Any] = {}
            skipped: list[str] = []
            counts: dict[str, int] = {}

            def finish(meta: dict[str, Any], skipped: list[str] = skipped, counts: dict[str, int] = counts) -> bool:
                meta["skipped"] = skipped
                counts.update(meta["documents"])
                return has_validation or all(counts.values())

            with tqdm(total=self._estimated_bytes(), unit="char", unit_scale=True, disable=None,
                      desc=f"Tokenizing into {directory.name}") as bar:
                meta = write_shards(directory, lambda t=threshold, s=stats, r=skipped: self._pairs(t, s, r.append),
                                    tokenizer, estimated_bytes=estimate, progress=bar.update, finish=finish)
            if meta is not None:
                self._split_at = threshold
                return meta
            threshold = self._threshold(stats, counts)  # raises when no threshold can split the corpus
        raise AssertionError("a moved threshold leaves both splits non-empty")

    def _tokenized(self, split: Split) -> TokenBlocks:
        """Token blocks of `split`, sliced from the memory-mapped shard (built on first use)."""
        if split in self._datasets:
            return self._datasets[split]
        directory = self._shard_directory()
        directory.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory.parent)  # what killed builds left, whichever shards they built
        meta = read_meta(directory)
        if meta is None:
            with FileLock(os.fspath(directory) + ".lock"):  # DDP ranks / parallel runs wait for one build
                meta = read_meta(directory) or self._build_shards(directory)
        check_meta(directory, meta, self.tokenizer)
        if not self._datasets:  # once per data module, for every run that reads these shards
            for line in meta.get("skipped", []):
                rank_zero_warn(line)
        chunk = self._chunk_length()
        tokens = meta["tokens"][split]
        # clm blocks must be full (no padding), so the short tail is left out — unless the split is
        # shorter than one block (a small corpus), when it is read as one shorter block; mlm and
        # span pad, so they keep the tail.
        dataset = TokenBlocks(directory / f"{split}.bin", dtype=meta["dtype"], num_tokens=tokens,
                              block_size=chunk, drop_remainder=self.objective == "clm" and tokens >= chunk)
        _check(
            len(dataset) > 0,
            f"the {split} split yields no sequences of max_seq_len={self.max_seq_len} tokens "
            f"({meta['documents'][split]} documents); lower max_seq_len, raise val_fraction or add text",
        )
        self._datasets[split] = dataset
        return dataset

    def prepare_data(self) -> None:
        """Train or load the tokenizer and tokenize both splits into the cache (one process)."""
        for split in ("train", "validation"):
            self._tokenized(split)

    def setup(self, stage: str | None = None) -> None:
        """Open the cached datasets the stage needs."""
        if stage in (None, "fit"):
            self._tokenized("train")
        if stage in (None, "fit", "validate", "test"):
            self._tokenized("validation")

    # -----------------------------------------------------------------------------------------
    # Loaders

    def _collator(self, deterministic: bool) -> Any:
        tok = self.tokenizer
        rank = self.trainer.global_rank if self.trainer is not None else 0
        # Different ranks see different data anyway; distinct seeds keep their masks independent.
        seed = self.seed + 1_000_003 * rank
        if self.objective == "clm":
            return CLMCollator()
        if self.objective == "mlm":
            return MLMCollator(
                seed=seed,
                deterministic=deterministic,
                pad_id=tok.pad_id,
                cls_id=tok.cls_id,
                sep_id=tok.sep_id,
                mask_id=tok.mask_id,
                special_ids=tok.special_ids,
                vocab_size=tok.vocab_size,
                max_seq_len=self.max_seq_len,
                mlm_probability=self.mlm_probability,
            )
        return SpanCorruptionCollator(
            seed=seed,
            deterministic=deterministic,
            pad_id=tok.pad_id,
            eos_id=tok.eos_id,
            sentinel_ids=tok.sentinel_ids,
            noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length,
        )

    def _loader(self, split: Split) -> DataLoader:
        """Batches in a fixed order with fixed masks."""
        return DataLoader(
            self._tokenized(split),
            batch_size=self.batch_size,
            collate_fn=self._collator(deterministic=True),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=ignore_stop_signals,
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled (seeded) training batches with fresh masks every epoch; resumable (see `SeededSampler`)."""
        dataset = self._tokenized("train")
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        with warnings.catch_warnings():  # torchdata 0.11 calls a torch API that newer torch deprecates
            warnings.filterwarnings("ignore", message=".*set_vital.*")
            return StatefulDataLoader(
                _SeededExamples(dataset),
                batch_size=self.batch_size,
                sampler=SeededSampler(dataset, num_replicas=world_size, rank=rank, seed=self.seed),
                collate_fn=self._collator(deterministic=False),
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=torch.cuda.is_available(),
                worker_init_fn=ignore_stop_signals,
            )

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order with fixed masks."""
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        """The validation batches (the data has no separate test split)."""
        return self._loader("validation")

    def predict_dataloader(self) -> DataLoader:
        """The validation batches, for ``zoo predict`` to score sequence by sequence."""
        return self._loader("validation")

    # -----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must agree on with the data — the tokenizer (carried whole, as bytes) and
        its size — and which corpus it was trained on (``corpus_key``: files, split and settings)."""
        return {**tokenizer_state(self.tokenizer, self.tokenizer_file), "corpus_key": self._corpus_key(),
                "data_files": self.data_identity()}

    def data_identity(self) -> list[dict[str, Any]]:
        """Each data file's split, path, size and SHA-256 (``zoo.files.file_identity``), computed once: what
        a resume checks to notice that the files changed under the same names."""
        if getattr(self, "_identity", None) is None:
            files = self._files or {}
            self._identity = [{"split": split, **file_identity(path)} for split, paths in sorted(files.items())
                              for path in paths]
        return self._identity

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint whose tokenizer differs from this data's.

        Raises:
            ValueError: Fingerprint or vocabulary size differ, or the data files' contents (the message
                names what differs).
        """
        saved_files = state_dict.get("data_files")
        if saved_files is not None:
            before = [(f["split"], f["sha256"]) for f in saved_files]
            now = [(f["split"], f["sha256"]) for f in self.data_identity()]
            if before != now:
                pairs = zip(saved_files, self.data_identity(), strict=False)
                differing = (f"{a['path']} (then {a['bytes']} bytes)" for a, b in pairs if a["sha256"] != b["sha256"])
                changed = next(differing, f"{len(saved_files)} file(s) then, {len(now)} now")
                raise ValueError(f"the checkpoint was trained on other data than this run reads: {changed} changed; "
                                 "a resume continues on the same data (to train these weights on this data, start a "
                                 "new run from them with --model.init_args.pretrained)")
        fingerprint = state_dict.get("tokenizer_fingerprint")
        vocab_size = state_dict.get("vocab_size")
        if fingerprint == self.tokenizer_fingerprint and vocab_size == self.vocab_size:
            return
        where = state_dict.get("tokenizer_file")
        hint = f" (it was saved at {where})" if where else ""
        raise ValueError(
            f"checkpoint tokenizer (fingerprint {fingerprint}, vocab_size {vocab_size}) differs "
            f"from the data's (fingerprint {self.tokenizer_fingerprint}, vocab_size "
            f"{self.vocab_size}); pass --data.tokenizer_path with the tokenizer the checkpoint "
            f"was trained with{hint}"
        )
