"""Tokenizers with one interface: SentencePiece (trained and cached here) and character-level.

Every tokenizer reserves the same special tokens, in the same order, at the lowest ids:

    0 <pad>   1 <unk>   2 <s>   3 </s>   4 [MASK]   5 [CLS]   6 [SEP]   7.. <extra_id_0>, <extra_id_1>, ...

Specials other than <unk> are never produced by `encode`, whatever the text says: the literal string
"[MASK] </s>" encodes to ordinary pieces. Objectives insert specials by id, so a corpus that talks
about tokenizers (ours does) cannot forge them.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import sentencepiece as spm
from filelock import FileLock

from zoo.data.corpus import documents_fingerprint
from zoo.files import atomic_write, remove_stale_temporaries

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
MASK, CLS, SEP = "[MASK]", "[CLS]", "[SEP]"
#: Sentinels for T5 span corruption (the Hugging Face T5 names).
NUM_SENTINELS = 100
#: What `decode` prints for an unknown id (SentencePiece's own choice).
UNK_SURFACE = " \u2047 "

ModelType = Literal["unigram", "bpe"]
#: SentencePiece's trainer threads. Fixed, not the CPUs at hand: its unigram E-step gives sentence i
#: to thread i % num_threads and sums each thread's float expectations, so every thread count
#: rounds differently and trains a different model (1 vs 2 threads: two vocabularies). With a
#: fixed count the same corpus and settings give the same model on any machine.
TRAIN_THREADS = 8
#: SentencePiece's limit on one training sentence, in bytes; longer lines are cut into pieces of at
#: most `TRAIN_PIECE_CHARS` characters (4 bytes each at most) instead of being dropped.
MAX_SENTENCE_BYTES = 16384
TRAIN_PIECE_CHARS = MAX_SENTENCE_BYTES // 4
#: The tokenizers zoo trains: SentencePiece or one id per character.
TokenizerKind = Literal["sentencepiece", "char"]
TOKENIZER_KINDS: tuple[str, ...] = get_args(TokenizerKind)


def check_tokenizer_kind(kind: str) -> None:
    """Raise a one-line ``ValueError`` unless ``kind`` is one of ``TOKENIZER_KINDS``."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer must be {' or '.join(map(repr, TOKENIZER_KINDS))}, got {kind!r}")


def sentinel_token(index: int) -> str:
    """The name of span-corruption sentinel `index`, e.g. `<extra_id_0>`."""
    return f"<extra_id_{index}>"


def _ids_list(ids: Iterable[int] | Any) -> list[int]:
    """Accept lists, tuples and tensors alike (tensors have `.tolist()`)."""
    return [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]


class Tokenizer(abc.ABC):
    """What the rest of zoo needs from a tokenizer.

    Subclasses set `_special` (name -> id for pad, unk, bos, eos, mask, cls, sep) and `_sentinels`.
    """

    _special: dict[str, int]
    _sentinels: list[int]

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included; ids run from 0 to vocab_size - 1."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A stable hash of the vocabulary/model; equal fingerprints mean identical tokenization."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without any special tokens added."""

    @abc.abstractmethod
    def _decode_pieces(self, ids: list[int]) -> str:
        """Text of ids that are all ordinary tokens or unk."""

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The tokenizer as the bytes of its file: what checkpoints carry (`tokenizer_from_bytes`
        reads them back), so a checkpoint copied alone still has its tokenizer."""

    #: The file name the tokenizer is saved under in a run directory or export.
    filename: str

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer to one file that `load` (and `load_tokenizer`) reads back (atomically)."""
        atomic_write(path, self.to_bytes(), "tokenizer file")

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a tokenizer written by `save`."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` over many texts; subclasses may parallelise."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int] | Any) -> str:
        """Text of `ids` (list or tensor), skipping special ids; unknown ids print as ` ⁇ `."""
        skip = set(self.special_ids) - {self.unk_id}
        return self._decode_pieces([i for i in _ids_list(ids) if i not in skip])

    def token_byte_lengths(self) -> list[int]:
        """UTF-8 bytes of text each id stands for, indexed by id (0 for specials): the
        denominator of bits per byte, which then does not depend on how a tokenizer cuts text."""
        special = set(self.special_ids)
        return [0 if i in special else self._piece_byte_length(i) for i in range(self.vocab_size)]

    def _piece_byte_length(self, i: int) -> int:
        """UTF-8 bytes of the text ordinary id `i` stands for."""
        return len(self._decode_pieces([i]).encode())

    @property
    def pad_id(self) -> int:
        """Padding id (always 0)."""
        return self._special[PAD]

    @property
    def unk_id(self) -> int:
        """Id of characters/pieces the vocabulary lacks."""
        return self._special[UNK]

    @property
    def bos_id(self) -> int:
        """Beginning-of-sequence id."""
        return self._special[BOS]

    @property
    def eos_id(self) -> int:
        """End-of-sequence id, also the document separator in packed streams."""
        return self._special[EOS]

    @property
    def mask_id(self) -> int:
        """[MASK] id for masked language modelling."""
        return self._special[MASK]

    @property
    def cls_id(self) -> int:
        """[CLS] id that starts an MLM sequence."""
        return self._special[CLS]

    @property
    def sep_id(self) -> int:
        """[SEP] id that ends an MLM sequence."""
        return self._special[SEP]

    @property
    def sentinel_ids(self) -> list[int]:
        """Ids of `<extra_id_0>`, `<extra_id_1>`, ... in that order."""
        return list(self._sentinels)

    @property
    def special_ids(self) -> list[int]:
        """Every reserved id (pad, unk, bos, eos, mask, cls, sep, sentinels), sorted."""
        return sorted({*self._special.values(), *self._sentinels})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, fingerprint={self.fingerprint})"


# ---------------------------------------------------------------------------------------------
# SentencePiece


class TokenizerTrainingError(ValueError):
    """SentencePiece could not train on the text given (one line; callers add which files)."""


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model whose specials are control symbols (never matched in text).

    Text is kept verbatim: identity normalisation, runs of spaces and newlines preserved, and
    byte fallback for characters unseen in training, so `decode(encode(text)) == text`.

    Args:
        model_proto: A serialised SentencePiece model, as written by `save`.
    """

    def __init__(self, model_proto: bytes) -> None:
        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        ids = {name: self._sp.piece_to_id(name) for name in (PAD, UNK, BOS, EOS, MASK, CLS, SEP)}
        # piece_to_id answers unk_id for absent pieces, so check the piece really is there.
        missing = [name for name, i in ids.items() if self._sp.id_to_piece(i) != name]
        if missing:
            raise ValueError(
                f"SentencePiece model lacks the special pieces {missing}; train it with "
                f"SentencePieceTokenizer.train so every zoo special token is reserved"
            )
        if ids[PAD] != 0:
            raise ValueError(f"SentencePiece model has pad_id={ids[PAD]}; zoo requires pad_id=0")
        self._special = ids
        self._sentinels = []
        while (i := self._sp.piece_to_id(sentinel_token(len(self._sentinels)))) != ids[UNK]:
            self._sentinels.append(i)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        model_type: ModelType = "unigram",
        num_sentinels: int = NUM_SENTINELS,
        max_chars: int = 10_000_000,
        num_threads: int = TRAIN_THREADS,
        expected_chars: int | None = None,
        shrink_to_fit: bool = False,
    ) -> SentencePieceTokenizer:
        """Train a model in memory on `texts` (normally the training split only).

        Documents are fed line by line, a line longer than SentencePiece's sentence limit cut into
        pieces at spaces (a text8-style one-line corpus trains too), with newlines kept as a piece
        of their own so multi-line text round-trips. Deterministic: the same texts and settings give
        the same model, byte for byte, whatever the machine (see `TRAIN_THREADS`).

        Args:
            texts: Training documents.
            vocab_size: Exact size of the vocabulary, specials included.
            model_type: "unigram" (T5's choice) or "bpe".
            num_sentinels: How many `<extra_id_i>` sentinels to reserve.
            max_chars: Cap on the characters fed to the trainer; beyond it a stable hash of each
                line picks a sample, which keeps training at a few seconds.
            num_threads: Trainer threads; part of what the model is (another count trains
                another model), so leave it at `TRAIN_THREADS` unless reproducing an old model.
            expected_chars: An estimate of the corpus size in characters; given, `texts` is
                streamed and sampled on the fly instead of listed (corpora larger than memory).
            shrink_to_fit: When the corpus supports fewer than `vocab_size` pieces, train as many
                as it supports (read `vocab_size` of the result) instead of failing.

        Raises:
            ValueError: `vocab_size` is too small for the specials and characters, or (without
                `shrink_to_fit`) too large for what the corpus supports; the message names the
                limit. `TokenizerTrainingError` (a ValueError) when SentencePiece fails otherwise.
        """
        sentences = _training_sentences(texts, max_chars, expected_chars)
        if not sentences:
            raise TokenizerTrainingError("cannot train a SentencePiece tokenizer on an empty corpus")
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                pad_id=0,
                unk_id=1,
                bos_id=2,
                eos_id=3,
                pad_piece=PAD,
                unk_piece=UNK,
                bos_piece=BOS,
                eos_piece=EOS,
                # control_symbols, unlike user_defined_symbols, are never matched inside text.
                control_symbols=[MASK, CLS, SEP] + [sentinel_token(i) for i in range(num_sentinels)],
                # "\n" is ordinary text; defining it keeps newlines that line-wise training
                # would otherwise never see.
                user_defined_symbols=["\n"],
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                # Lines are trained on separately but encoded inside documents; without a dummy
                # prefix a line start looks the same in both (and compresses ~3 % better here).
                add_dummy_prefix=False,
                allow_whitespace_only_pieces=True,
                character_coverage=1.0,
                byte_fallback=True,
                # Soft, when asked: a small corpus then gets the largest vocabulary it supports.
                hard_vocab_limit=not shrink_to_fit,
                # The bound on the sample: we sampled deterministically already (max_chars).
                # SentencePiece refuses 1..100 here; 0 means every sentence, the same for a small sample.
                input_sentence_size=len(sentences) if len(sentences) > 100 else 0,
                shuffle_input_sentence=False,
                max_sentence_length=MAX_SENTENCE_BYTES,
                num_threads=num_threads,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise _vocab_size_error(error, vocab_size, model_type) from None
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self._proto).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._sp.encode(list(texts), num_threads=_available_cpus())

    def _decode_pieces(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def _piece_byte_length(self, i: int) -> int:
        # A byte-fallback piece is one byte of a longer character (decoded alone it is U+FFFD),
        # and "\u2581" is how SentencePiece writes a space.
        if self._sp.is_byte(i):
            return 1
        return len(self._sp.id_to_piece(i).replace("\u2581", " ").encode())

    filename = "tokenizer.model"

    def to_bytes(self) -> bytes:
        return self._proto

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SentencePieceTokenizer:
        return cls(Path(path).read_bytes())


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _stable_fraction(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


def cut_at_spaces(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of at most `size` characters, each cut before a space where
    there is one in the second half of the piece (SentencePiece pieces never span a space, so a
    piece that starts with the space tokenizes as it would have inside the whole text)."""
    start = 0
    while len(text) - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        yield text[start:cut]
        start = cut
    yield text[start:]


def _lines(texts: Iterable[str]) -> Iterator[str]:
    """The non-blank lines of `texts`, over-long ones cut for SentencePiece's sentence limit."""
    for text in texts:
        for line in text.split("\n"):
            if not line.strip():
                continue
            if len(line) <= TRAIN_PIECE_CHARS:
                yield line
            else:
                yield from (piece for piece in cut_at_spaces(line, TRAIN_PIECE_CHARS) if piece.strip())


def _training_sentences(texts: Iterable[str], max_chars: int, expected_chars: int | None = None) -> list[str]:
    """Lines to train SentencePiece on: all of them, or a stable-hash sample of about `max_chars`.

    With `expected_chars` (an estimate of the corpus size, e.g. its bytes) the texts stream: each
    line is kept with probability max_chars / expected_chars, decided by a hash of the line, and
    never more than 2 * max_chars are kept, so memory is bounded whatever the corpus size. Lines
    longer than SentencePiece's sentence limit are cut into pieces (`cut_at_spaces`), each sampled
    on its own, so one huge line neither vanishes nor fills memory.
    """
    if expected_chars is None:
        lines = list(_lines(texts))
        total = sum(len(line) for line in lines)
        if total <= max_chars:
            return lines
        keep = max_chars / total
        return [line for line in lines if _stable_fraction(line) < keep]
    keep, kept, size = min(1.0, max_chars / max(expected_chars, 1)), [], 0
    for line in _lines(texts):
        if keep >= 1.0 or _stable_fraction(line) < keep:
            kept.append(line)
            size += len(line)
            if size >= 2 * max_chars:
                break
    return kept


def _vocab_size_error(error: RuntimeError, vocab_size: int, model_type: str) -> Exception:
    """Turn SentencePiece's multi-line internal errors into one line naming vocab_size."""
    message = str(error)
    if match := re.search(r"value <= (\d+)", message):
        return ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: a {model_type} SentencePiece "
            f"model can hold at most {match.group(1)} pieces here; use --data.vocab_size "
            f"{match.group(1)} or less, or more training text"
        )
    if match := re.search(r"required_chars\. \d+ vs (\d+)", message):
        return ValueError(
            f"vocab_size={vocab_size} is too small: the specials, byte fallback and the corpus's "
            f"characters need at least {match.group(1)} ids; use --data.vocab_size "
            f"{match.group(1)} or more"
        )
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return TokenizerTrainingError(f"SentencePiece training failed ({first}); try --data.init_args.tokenizer char, "
                                  f"another vocab_size, or cleaner text")


# ---------------------------------------------------------------------------------------------
# Characters


class CharTokenizer(Tokenizer):
    """One id per character seen in training; anything else is unk.

    Args:
        chars: The ordinary characters, in id order (after the specials).
        num_sentinels: How many `<extra_id_i>` sentinels to reserve.
    """

    def __init__(self, chars: Sequence[str], num_sentinels: int = NUM_SENTINELS) -> None:
        if any(len(char) != 1 for char in chars) or len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer chars must be distinct single characters")
        specials = [PAD, UNK, BOS, EOS, MASK, CLS, SEP]
        self._special = {name: i for i, name in enumerate(specials)}
        self._sentinels = list(range(len(specials), len(specials) + num_sentinels))
        offset = len(specials) + num_sentinels
        self._chars = list(chars)
        self._char_to_id = {char: offset + i for i, char in enumerate(self._chars)}
        self._id_to_char = dict(enumerate(self._chars, start=offset))
        self._lookup: Any = None  # code point -> id table for `encode_array`, built on first use

    @classmethod
    def train(cls, texts: Iterable[str], num_sentinels: int = NUM_SENTINELS) -> CharTokenizer:
        """Vocabulary = every character of `texts`, sorted by code point (`texts` may stream)."""
        seen: set[str] = set()
        for text in texts:
            seen.update(set(text))  # set(text) first: C speed per character, one update per text
        if not seen:
            raise ValueError("cannot build a CharTokenizer from an empty corpus")
        return cls(sorted(seen), num_sentinels)

    @property
    def vocab_size(self) -> int:
        return len(self._special) + len(self._sentinels) + len(self._chars)

    def _payload(self) -> bytes:
        state = {"kind": "char", "num_sentinels": len(self._sentinels), "chars": self._chars}
        return json.dumps(state, ensure_ascii=True, sort_keys=True).encode()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self._payload()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        unk = self.unk_id
        return [self._char_to_id.get(char, unk) for char in text]

    def encode_array(self, text: str) -> Any:
        """`encode` as an int64 numpy array, vectorised (for tokenising large corpora)."""
        import numpy as np

        if self._lookup is None:
            table = np.full(max(map(ord, self._chars)) + 1, self.unk_id, dtype=np.int64)
            for char, i in self._char_to_id.items():
                table[ord(char)] = i
            self._lookup = table
        points = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        table = self._lookup
        inside = points < len(table)
        return np.where(inside, table[np.where(inside, points, 0)], self.unk_id)

    def _decode_pieces(self, ids: list[int]) -> str:
        return "".join(self._id_to_char.get(i, UNK_SURFACE) for i in ids)

    filename = "tokenizer.json"

    def to_bytes(self) -> bytes:
        return self._payload()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CharTokenizer:
        tokenizer = tokenizer_from_bytes(Path(path).read_bytes(), repr(os.fspath(path)))
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{os.fspath(path)!r} is not a zoo CharTokenizer file")
        return tokenizer


# ---------------------------------------------------------------------------------------------
# Files and the cache


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a tokenizer saved by either kind: JSON means characters, anything else SentencePiece.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: The file is neither kind.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {os.fspath(path)!r} does not exist")
    return tokenizer_from_bytes(path.read_bytes(), f"tokenizer file {os.fspath(path)!r}")


def tokenizer_from_bytes(data: bytes, source: str = "tokenizer") -> Tokenizer:
    """A tokenizer from the bytes of its file (`Tokenizer.to_bytes`); `source` names it in errors.

    Raises:
        ValueError: The bytes are neither kind.
    """
    if data.lstrip()[:1] == b"{":
        try:
            state = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            state = None
        if not isinstance(state, dict) or state.get("kind") != "char":
            raise ValueError(f"{source} is not a zoo CharTokenizer file")
        return CharTokenizer(state["chars"], state["num_sentinels"])
    try:
        return SentencePieceTokenizer(data)
    except ValueError as error:  # a SentencePiece model, but not one with zoo's specials
        raise ValueError(f"{source}: {error}") from None
    except RuntimeError:
        raise ValueError(f"{source} is neither a SentencePiece model nor a zoo CharTokenizer JSON") from None


def tokenizer_state(tokenizer: Tokenizer, file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """What a data module saves in every checkpoint about its tokenizer: fingerprint and size (what a
    resumed or reloaded run must agree on), the file it came from (informative only), and the
    tokenizer itself, as bytes — the cache is only a cache: a checkpoint copied alone to another
    machine still generates, converts, fine-tunes and resumes."""
    return {"tokenizer_fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size,
            "tokenizer_file": None if file is None else os.fspath(file), "tokenizer_bytes": tokenizer.to_bytes()}


def materialise_tokenizer(tokenizer: Tokenizer, cache_dir: str | os.PathLike[str]) -> Path:
    """A file holding ``tokenizer`` under ``cache_dir/tokenizers/saved-<fingerprint>/`` (written once,
    atomically), for the code paths that take a tokenizer file (``tokenizer_path``)."""
    path = Path(cache_dir).expanduser() / "tokenizers" / f"saved-{tokenizer.fingerprint}" / tokenizer.filename
    if not (path.is_file() and path.read_bytes() == tokenizer.to_bytes()):
        tokenizer.save(path)
    return path


# Part of every cache key: bump when training settings change, so old caches are not reused.
# 3: fixed trainer threads (deterministic models), long lines cut, a soft vocabulary limit.
_CACHE_VERSION = 3


def cached_tokenizer_file(
    texts: Iterable[str],
    cache_dir: str | os.PathLike[str],
    *,
    kind: TokenizerKind = "sentencepiece",
    vocab_size: int = 8000,
    model_type: ModelType = "unigram",
    num_sentinels: int = NUM_SENTINELS,
    corpus_key: str | None = None,
    expected_chars: int | None = None,
) -> Path:
    """Path of a tokenizer trained on `texts`, training it only if no cached copy exists.

    The key hashes the corpus, the settings and the SentencePiece version, so a changed corpus or
    vocabulary size trains afresh. A file lock makes concurrent processes (DDP ranks) wait for one
    trainer instead of all training; temporaries a killed trainer left are removed first. A corpus
    too small for `vocab_size` gets the largest vocabulary it supports (compare the file's
    `vocab_size` with the one asked for).

    Args:
        texts: Training documents (the training split only).
        cache_dir: Root of the zoo cache; files go to `cache_dir/tokenizers/`.
        kind: "sentencepiece" or "char".
        vocab_size: SentencePiece vocabulary size (ignored for "char").
        model_type: SentencePiece model type (ignored for "char").
        num_sentinels: Sentinels to reserve.
        corpus_key: Identifies the corpus in the cache key instead of hashing `texts`; then
            `texts` (which may be a one-shot stream) is read only when training is needed.
        expected_chars: Corpus size estimate; SentencePiece then samples `texts` as they stream.

    Returns:
        The tokenizer file; read it with `load_tokenizer`.
    """
    settings: dict[str, Any] = {"kind": kind, "num_sentinels": num_sentinels, "v": _CACHE_VERSION}
    if kind == "sentencepiece":
        settings |= {"vocab_size": vocab_size, "model_type": model_type, "spm": spm.__version__}
        name = f"spm-{model_type}-{vocab_size}"
        filename = "tokenizer.model"
    else:
        check_tokenizer_kind(kind)
        name, filename = "char", "tokenizer.json"
    corpus = corpus_key if corpus_key is not None else documents_fingerprint(texts)
    key = hashlib.sha256((json.dumps(settings, sort_keys=True) + corpus).encode()).hexdigest()[:16]
    directory = Path(cache_dir).expanduser() / "tokenizers" / f"{name}-{key}"
    path = directory / filename
    for built in _subdirectories(directory.parent):  # what killed builds of any tokenizer left
        remove_stale_temporaries(built)
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(os.fspath(directory) + ".lock"):
        if not path.is_file():  # another process may have finished while we waited
            tokenizer: Tokenizer
            if kind == "sentencepiece":
                tokenizer = SentencePieceTokenizer.train(
                    texts, vocab_size=vocab_size, model_type=model_type, num_sentinels=num_sentinels,
                    expected_chars=expected_chars, shrink_to_fit=True,
                )
            else:
                tokenizer = CharTokenizer.train(texts, num_sentinels=num_sentinels)
            tokenizer.save(path)
    return path


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return [entry for entry in directory.iterdir() if entry.is_dir()]
    except OSError:  # not there yet
        return []


def iter_special_tokens(num_sentinels: int = NUM_SENTINELS) -> Iterator[str]:
    """Names of the reserved tokens in id order (useful for docs and tests)."""
    yield from (PAD, UNK, BOS, EOS, MASK, CLS, SEP)
    yield from (sentinel_token(i) for i in range(num_sentinels))
