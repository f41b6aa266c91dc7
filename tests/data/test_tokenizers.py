"""SentencePiece and character tokenizers: specials, round trips, files, and the training cache."""

import os
import threading
from pathlib import Path

import pytest

from zoo.data.tokenizers import (
    UNK_SURFACE,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    cached_tokenizer_file,
    iter_special_tokens,
    load_tokenizer,
)

from .helpers import SMALL_VOCAB, assert_one_line

# Text that spells out every special token; none of it may come back as a special id.
FORGED = "[MASK] [CLS] [SEP] <pad> <unk> <s> </s> <extra_id_0> <extra_id_99> [MASK]<extra_id_1></s>"
CODE = 'def f(x):\n    """Return x."""\n\n    return  x  # two spaces\n\t\ttabbed\n'


@pytest.fixture(params=["sentencepiece", "char"])
def tokenizer(request: pytest.FixtureRequest, spm_tokenizer, char_tokenizer) -> Tokenizer:
    return spm_tokenizer if request.param == "sentencepiece" else char_tokenizer


def test_special_layout(tokenizer: Tokenizer) -> None:
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert (tokenizer.mask_id, tokenizer.cls_id, tokenizer.sep_id) == (4, 5, 6)
    assert tokenizer.sentinel_ids == list(range(7, 107))
    assert tokenizer.special_ids == list(range(107))
    assert len(list(iter_special_tokens())) == 107


def test_sentencepiece_vocab_size_is_exact(spm_tokenizer: SentencePieceTokenizer) -> None:
    assert spm_tokenizer.vocab_size == SMALL_VOCAB
    assert max(spm_tokenizer.encode(CODE)) < SMALL_VOCAB


def test_specials_never_match_raw_text(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(FORGED)
    assert ids and not set(ids) & set(tokenizer.special_ids)
    assert tokenizer.decode(ids) == FORGED


def test_round_trip_on_unseen_documents(tokenizer: Tokenizer, small_split) -> None:
    """Validation documents were not trained on, yet decode(encode(doc)) gives them back."""
    _, val = small_split
    for doc in val + [CODE]:
        if isinstance(tokenizer, CharTokenizer) and set(doc) - set(tokenizer._chars):
            continue  # unseen characters are unk for the char tokenizer, tested below
        assert tokenizer.decode(tokenizer.encode(doc)) == doc


def test_sentencepiece_byte_fallback_round_trips_unseen_characters(spm_tokenizer) -> None:
    text = "snowman \u2603, kanji \u6f22\u5b57, emoji \U0001f600"
    ids = spm_tokenizer.encode(text)
    assert spm_tokenizer.unk_id not in ids
    assert spm_tokenizer.decode(ids) == text


def test_decode_skips_specials_but_shows_unk(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("hello world")
    wrapped = [tokenizer.cls_id, tokenizer.bos_id, *ids, tokenizer.sentinel_ids[3], tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(wrapped) == "hello world"
    assert "\u2047" in tokenizer.decode([*ids, tokenizer.unk_id])


def test_decode_accepts_tensors(tokenizer: Tokenizer) -> None:
    import torch

    ids = tokenizer.encode("tensor input")
    assert tokenizer.decode(torch.tensor(ids)) == "tensor input"


def test_char_tokenizer_vocabulary(char_tokenizer: CharTokenizer, small_split) -> None:
    train, _ = small_split
    chars = sorted(set("".join(train)))
    assert char_tokenizer.vocab_size == 107 + len(chars)
    assert char_tokenizer.encode(chars[0] + chars[-1]) == [107, 107 + len(chars) - 1]
    assert char_tokenizer.encode("\u2603") == [char_tokenizer.unk_id]
    assert char_tokenizer.decode(char_tokenizer.encode("a\u2603b")) == "a" + UNK_SURFACE + "b"
    assert CharTokenizer.train(train).fingerprint == char_tokenizer.fingerprint  # deterministic


def test_save_and_load_round_trip(tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = tmp_path / ("tok.json" if isinstance(tokenizer, CharTokenizer) else "tok.model")
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.fingerprint == tokenizer.fingerprint
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.sentinel_ids == tokenizer.sentinel_ids
    assert loaded.encode(CODE) == tokenizer.encode(CODE)
    assert type(tokenizer).load(path).fingerprint == tokenizer.fingerprint


def test_fingerprints_differ_between_tokenizers(spm_tokenizer, char_tokenizer, small_split) -> None:
    assert spm_tokenizer.fingerprint != char_tokenizer.fingerprint
    assert CharTokenizer.train(small_split[0][:5]).fingerprint != char_tokenizer.fingerprint


def test_load_tokenizer_rejects_garbage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.model"):
        load_tokenizer(tmp_path / "nope.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"\x00\x01 definitely not a model")
    with pytest.raises(ValueError, match="garbage.model") as info:
        load_tokenizer(garbage)
    assert_one_line(info.value)


def test_load_tokenizer_rejects_a_model_without_zoo_specials(tmp_path: Path, small_split) -> None:
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    lines = [line for doc in small_split[0][:40] for line in doc.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=300, model_type="bpe", minloglevel=2
    )
    path = tmp_path / "foreign.model"
    path.write_bytes(model.getvalue())
    with pytest.raises(ValueError, match="lacks the special pieces") as info:
        load_tokenizer(path)
    assert "foreign.model" in assert_one_line(info.value)


def test_bpe_model_type(small_split) -> None:
    tokenizer = SentencePieceTokenizer.train(small_split[0], vocab_size=800, model_type="bpe")
    assert tokenizer.vocab_size == 800
    assert tokenizer.decode(tokenizer.encode(CODE)) == CODE
    assert not set(tokenizer.encode(FORGED)) & set(tokenizer.special_ids)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
@pytest.mark.parametrize(("vocab_size", "expected"), [(100_000, "too large"), (200, "too small")])
def test_impossible_vocab_size_is_one_clear_line(small_split, model_type, vocab_size: int, expected: str) -> None:
    docs = small_split[0][:40]
    with pytest.raises(ValueError, match=expected) as info:
        SentencePieceTokenizer.train(docs, vocab_size=vocab_size, model_type=model_type)
    message = assert_one_line(info.value)
    assert f"vocab_size={vocab_size}" in message
    limit = int(message.split("--data.vocab_size ")[1].split()[0])
    # The limit the message names really works.
    assert SentencePieceTokenizer.train(docs, vocab_size=limit, model_type=model_type).vocab_size == limit


# ---------------------------------------------------------------------------------------------
# Cache


@pytest.fixture
def count_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls to SentencePieceTokenizer.train (each entry is a vocab size)."""
    calls: list[int] = []
    original = SentencePieceTokenizer.train.__func__

    def counting(cls, texts, **kwargs):
        calls.append(kwargs["vocab_size"])
        return original(cls, texts, **kwargs)

    monkeypatch.setattr(SentencePieceTokenizer, "train", classmethod(counting))
    return calls


def test_cache_trains_once_and_retrains_on_changes(cache_dir: Path, small_split, count_training) -> None:
    # BPE trains in milliseconds; the cache logic is the same for both model types.
    train = small_split[0]
    first = cached_tokenizer_file(train, cache_dir, vocab_size=SMALL_VOCAB, model_type="bpe")
    mtime = first.stat().st_mtime_ns
    assert count_training == [SMALL_VOCAB]
    assert cached_tokenizer_file(train, cache_dir, vocab_size=SMALL_VOCAB, model_type="bpe") == first
    assert first.stat().st_mtime_ns == mtime and count_training == [SMALL_VOCAB]

    other_vocab = cached_tokenizer_file(train, cache_dir, vocab_size=SMALL_VOCAB + 100, model_type="bpe")
    assert other_vocab != first and count_training == [SMALL_VOCAB, SMALL_VOCAB + 100]
    assert load_tokenizer(other_vocab).vocab_size == SMALL_VOCAB + 100

    other_corpus = cached_tokenizer_file(train[:-1], cache_dir, vocab_size=SMALL_VOCAB, model_type="bpe")
    assert other_corpus not in (first, other_vocab) and len(count_training) == 3


def test_cache_lock_lets_only_one_of_many_workers_train(cache_dir: Path, small_split, count_training) -> None:
    paths: list[Path] = []

    def worker() -> None:
        paths.append(cached_tokenizer_file(small_split[0], cache_dir, vocab_size=SMALL_VOCAB, model_type="bpe"))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1 and len(paths) == 3
    assert count_training == [SMALL_VOCAB]


def test_char_kind_is_cached_as_json(cache_dir: Path, small_split) -> None:
    path = cached_tokenizer_file(small_split[0], cache_dir, kind="char")
    assert path.suffix == ".json" and os.path.getsize(path) > 0
    assert isinstance(load_tokenizer(path), CharTokenizer)


# ---------------------------------------------------------------------------------------------
# Deterministic training

_TRAIN_ON_CPUS = """
import hashlib, json, os, sys
cpus = json.loads(sys.argv[1])
os.sched_setaffinity(0, cpus)
from zoo.data.corpus import builtin_corpus
from zoo.data.tokenizers import SentencePieceTokenizer
tokenizer = SentencePieceTokenizer.train(builtin_corpus()[:120], vocab_size=600, model_type=sys.argv[2])
print(hashlib.sha256(tokenizer._proto).hexdigest())
"""


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_training_gives_the_same_model_on_one_cpu_and_on_two(model_type: str) -> None:
    """SentencePiece's trainer gives sentence i to thread i % num_threads and sums the threads' float
    expectations, so each thread count trains another model; zoo used as many threads as CPUs. A
    fixed count (TRAIN_THREADS) gives one model per corpus and settings, whatever the machine."""
    import json
    import subprocess
    import sys

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(repo), os.environ.get("PYTHONPATH", "")])}
    digests = [subprocess.run([sys.executable, "-c", _TRAIN_ON_CPUS, json.dumps(use), model_type], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
               for use in (cpus[:1], cpus[:2])]
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_the_thread_count_is_what_makes_models_differ(small_split) -> None:
    """Why the count is fixed: the same corpus trained with 1 and 2 threads gives two models."""
    one, two = (SentencePieceTokenizer.train(small_split[0][:60], vocab_size=500, num_threads=threads)
                for threads in (1, 2))
    assert one.fingerprint != two.fingerprint
