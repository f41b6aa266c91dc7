"""Token shards on disk: a corpus tokenised once, streamed, into one flat token file per split.

Each split is a single `uint16` (vocabularies up to 65 536) or `uint32` file of token ids, every
document followed by eos, next to a `meta.json` that records the tokenizer, the dtype and the token
counts. Training reads fixed-length blocks as slices of a `numpy.memmap`, so memory stays flat
whatever the corpus size: a block is `block_size` ids read from the page cache, never a Python list
of the corpus. A shard directory appears all at once (built under a temporary name, then renamed),
so an interrupted build leaves nothing a later run could mistake for a finished one, and the next
build removes what a killed one left (`zoo.data.tempfiles`). A full disk — found before writing by
an estimate, or by the write itself — stops with one line naming the directory.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from zoo.data.tempfiles import remove_stale_temporaries, temporary_path
from zoo.data.tokenizers import CharTokenizer, Tokenizer, cut_at_spaces

#: Part of every shard cache key and of `meta.json`: bump when the layout below changes.
SHARD_VERSION = 2
#: Documents per tokenisation batch: big enough for SentencePiece's threads, small in memory.
ENCODE_BATCH = 1000
#: Characters per tokenisation batch at most: a document longer than this (a text8-style one-line
#: corpus) is encoded in pieces cut at spaces, so memory stays bounded by the batch, not the line.
ENCODE_CHARS = 1 << 22
META = "meta.json"


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding every id of a `vocab_size` vocabulary."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def encode_documents(
    tokenizer: Tokenizer, texts: list[str], dtype: np.dtype, ends: list[bool] | None = None
) -> np.ndarray:
    """Token ids of `texts`, each followed by eos, as one flat array of `dtype`.

    With `ends`, only the texts whose entry is True are followed by eos (the others are pieces of a
    longer document that the next text continues).
    """
    eos = tokenizer.eos_id
    ends = [True] * len(texts) if ends is None else ends
    if isinstance(tokenizer, CharTokenizer):  # one vectorised lookup for the whole batch
        ids = tokenizer.encode_array("".join(texts))
        offsets = np.cumsum([len(text) for text in texts])  # str lengths are code points, one id each
        return np.insert(ids, offsets[np.asarray(ends, dtype=bool)], eos).astype(dtype)
    rows = tokenizer.encode_batch(texts)
    total = sum(len(row) for row in rows) + sum(ends)
    flat = itertools.chain.from_iterable(itertools.chain(row, (eos,) if end else ()) for row, end in zip(
        rows, ends, strict=True))
    return np.fromiter(flat, dtype=dtype, count=total)


def _size(count: float) -> str:
    """Bytes in words a person reads at a glance: 812 kB, 23.4 MB, 1.52 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"


class ShardWriteError(OSError):
    """Writing token shards failed (disk full, quota, read-only, I/O error); one line naming the directory."""

    def __str__(self) -> str:  # the message alone: no "[Errno 28]" in front of it
        return self.strerror or super().__str__()


def check_free_space(directory: Path, needed: int) -> None:
    """Fail in one line, before writing, when `directory`'s disk has less than `needed` bytes free."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise ShardWriteError(
            errno.ENOSPC,
            f"not enough disk space for the token shards in {os.fspath(directory)}: about {_size(needed)} "
            f"needed, {_size(free)} free; free space or set ZOO_CACHE_DIR (--data.init_args.cache_dir) to a "
            f"larger disk",
        )


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The shard directory's metadata, or None when no finished build is there."""
    path = directory / META
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def check_meta(directory: Path, meta: dict[str, Any], tokenizer: Tokenizer) -> None:
    """Refuse shards that another tokenizer (or another layout) wrote, in one line."""
    if meta.get("version") != SHARD_VERSION or meta.get("tokenizer") != tokenizer.fingerprint:
        raise ValueError(
            f"token shards in {os.fspath(directory)} were written by tokenizer {meta.get('tokenizer')} "
            f"(layout v{meta.get('version')}), not by this data's tokenizer {tokenizer.fingerprint} "
            f"(v{SHARD_VERSION}); delete that directory to rebuild it"
        )
    for split, count in meta["tokens"].items():
        path = directory / f"{split}.bin"
        expected = count * np.dtype(meta["dtype"]).itemsize
        if not path.is_file() or path.stat().st_size != expected:
            raise ValueError(
                f"token shard {os.fspath(path)} is missing or truncated (expected {expected} bytes); "
                f"delete {os.fspath(directory)} to rebuild it"
            )


def write_shards(
    directory: Path,
    documents: Callable[[], Iterable[tuple[str, str]]],
    tokenizer: Tokenizer,
    *,
    estimated_bytes: int,
    splits: tuple[str, ...] = ("train", "validation"),
    progress: Callable[[int], Any] | None = None,
    finish: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | None:
    """Tokenise `documents()` — `(split, text)` pairs, streamed — into `directory/{split}.bin`.

    Memory holds one batch of `ENCODE_BATCH` documents (at most `ENCODE_CHARS` characters) at a
    time. Everything is written into a temporary sibling directory (`zoo.data.tempfiles`) that is
    fsynced and renamed into place only when complete, so a crash, a full disk or a bad file midway
    leaves no half-written shards; temporaries that killed builds left beside it are removed first.

    Args:
        directory: Where the finished shards go (must not exist yet).
        documents: Called once; yields `(split, text)` pairs in corpus order.
        tokenizer: Encodes the text.
        estimated_bytes: Upper estimate of the shard size, checked against the free space first.
        splits: The splits to write (each gets a file, possibly empty).
        progress: Called with the number of characters of each tokenised batch (a progress bar).
        finish: Called with the metadata before it is written; may add entries to it. When it
            returns False the build is discarded (nothing is renamed into place) and None returned.

    Returns:
        The metadata written to `meta.json` (token and document counts per split, dtype, tokenizer).

    Raises:
        ShardWriteError: (an OSError, one line) a write failed — disk full, quota, read-only — naming
            the directory and the fix; nothing is left behind.
    """
    remove_stale_temporaries(directory.parent)
    check_free_space(directory.parent, estimated_bytes)
    dtype = token_dtype(tokenizer.vocab_size)
    tmp = temporary_path(directory)
    tokens = dict.fromkeys(splits, 0)
    docs = dict.fromkeys(splits, 0)
    handles: dict[str, Any] = {}
    pending: dict[str, list[str]] = {split: [] for split in splits}
    ends: dict[str, list[bool]] = {split: [] for split in splits}  # False: a piece the next one continues
    sizes = dict.fromkeys(splits, 0)

    def flush(split: str) -> None:
        array = encode_documents(tokenizer, pending[split], dtype, ends[split])
        with _writing(directory):  # not ndarray.tofile: its OSError on a full disk carries no errno
            handles[split].write(array.data)
        tokens[split] += len(array)
        docs[split] += sum(ends[split])
        if progress is not None:
            progress(sizes[split])
        pending[split], ends[split], sizes[split] = [], [], 0

    try:
        with _writing(directory):
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            handles.update({split: open(tmp / f"{split}.bin", "wb") for split in splits})  # noqa: SIM115
        for split, text in documents():
            if len(text) <= ENCODE_CHARS:  # the hot path: one document, whole
                batch = pending[split]
                batch.append(text)
                ends[split].append(True)
                sizes[split] += len(text)
                if len(batch) >= ENCODE_BATCH or sizes[split] >= ENCODE_CHARS:
                    flush(split)
                continue
            pieces = list(cut_at_spaces(text, ENCODE_CHARS))
            for i, piece in enumerate(pieces, 1):
                pending[split].append(piece)
                ends[split].append(i == len(pieces))
                sizes[split] += len(piece)
                flush(split)  # each piece is a batch's worth
        for split in splits:
            if pending[split]:
                flush(split)
        with _writing(directory):
            for handle in handles.values():
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
        meta = {"version": SHARD_VERSION, "tokenizer": tokenizer.fingerprint, "dtype": dtype.name,
                "tokens": tokens, "documents": docs}
        if finish is not None and not finish(meta):
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        with _writing(directory), open(tmp / META, "w") as handle:
            handle.write(json.dumps(meta, indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        with _writing(directory):
            os.replace(tmp, directory)  # atomic: the directory appears complete or not at all
    except BaseException:
        for handle in handles.values():
            with contextlib.suppress(OSError):  # a full disk fails the close too; the first error is the one
                handle.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


@contextlib.contextmanager
def _writing(directory: Path) -> Iterator[None]:
    """Turn an OSError of a shard write into a one-line `ShardWriteError` naming the directory."""
    try:
        yield
    except ShardWriteError:
        raise
    except OSError as error:
        raise ShardWriteError(error.errno or errno.EIO, _write_failure(directory, error)) from None


def _write_failure(directory: Path, error: OSError) -> str:
    """One line for a failed shard write: where, why, and what to do."""
    where = os.fspath(directory.parent)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(where).free if os.path.isdir(where) else 0
        fix = (f"the disk filled up while writing (now {_size(free)} free); free space or set ZOO_CACHE_DIR "
               f"(--data.init_args.cache_dir) to a larger disk")
    elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "the directory is not writable; set ZOO_CACHE_DIR (--data.init_args.cache_dir) to a writable one"
    else:
        fix = "check the disk, or set ZOO_CACHE_DIR (--data.init_args.cache_dir) to another one"
    return f"writing token shards in {where} failed ({error.strerror or error}): {fix}; nothing was left behind"


class TokenBlocks(Dataset):
    """Fixed-length blocks of a token shard, read as slices of a memory map.

    Block `i` is tokens `[i * block_size, (i + 1) * block_size)`; with `drop_remainder` the short
    tail is left out (causal LM: every block full), without it the last block is shorter (the MLM
    and span collators pad). The map opens lazily in each process (DataLoader workers included),
    so pickling the dataset never copies tokens.

    Args:
        path: The `.bin` file.
        dtype: Its dtype name ("uint16" or "uint32").
        num_tokens: Tokens in the file.
        block_size: Tokens per block.
        drop_remainder: Leave out a final block shorter than `block_size`.
    """

    def __init__(self, path: Path, *, dtype: str, num_tokens: int, block_size: int, drop_remainder: bool) -> None:
        self.path, self.dtype, self.num_tokens, self.block_size = Path(path), dtype, num_tokens, block_size
        self._length = num_tokens // block_size if drop_remainder else -(-num_tokens // block_size)
        self._tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return self._length

    def _map(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.num_tokens,))
        return self._tokens

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tokens": None}  # each worker maps the file itself

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        if not 0 <= index < self._length:
            raise IndexError(f"block {index} out of range for {self._length} blocks")
        start = index * self.block_size
        return {"input_ids": self._map()[start : start + self.block_size].tolist()}

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        return (self[i] for i in range(len(self)))
