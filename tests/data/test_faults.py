"""Faults at the data's edges, made real: a full disk (a small tmpfs), a disk that fills up mid-shard,
a read-only cache, a build killed with SIGKILL, SentencePiece failing — each is one line (a ValueError
or OSError subclass) naming the file or directory and the fix, and nothing half-written stays behind.

The tmpfs tests need root (to mount); elsewhere they skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo import files
from zoo.data import TextDataModule, shards
from zoo.data.datamodule import writable_cache_dir
from zoo.data.labelled import LabelledTextDataModule
from zoo.data.shards import ShardWriteError
from zoo.data.tempfiles import remove_stale_temporaries, temporary_path
from zoo.data.tokenizers import cached_tokenizer_file

from .helpers import assert_one_line

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _tmpfs(directory: Path, size: str, *options: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs",
                              os.fspath(directory)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", os.fspath(directory)], check=False)


def _words(path: Path, megabytes: float) -> Path:
    """About `megabytes` of distinct lines."""
    line = "the quick brown fox jumps over the lazy dog and keeps on running"
    path.write_text("".join(f"{i} {line}\n" for i in range(int(megabytes * 1e6 / (len(line) + 8)))))
    return path


def _module(corpus: Path, cache: Path, **kwargs) -> TextDataModule:
    return TextDataModule(objective="clm", data_files=os.fspath(corpus), tokenizer="char", max_seq_len=32,
                          cache_dir=os.fspath(cache), **kwargs)


def _leftovers(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.name.endswith(".tmp") or path.name == "meta.json"]


def test_a_full_disk_is_one_line_before_writing(tmp_path: Path) -> None:
    corpus = _words(tmp_path / "corpus.txt", 3)
    with _tmpfs(tmp_path / "small", "2m") as cache:
        dm = _module(corpus, cache)
        with pytest.raises(OSError) as info:
            dm.prepare_data()
        message = assert_one_line(info.value)
        assert isinstance(info.value, ShardWriteError) and not message.startswith("[Errno")
        assert re.search(rf"{cache / 'shards'}: about 5.\d+ MB needed, 2.\d+ MB free; free space or set ZOO_CACHE_DIR",
                         message)
        assert not _leftovers(cache)


def test_a_disk_that_fills_up_mid_shard_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """The estimate can be wrong (other writers, quotas): the write itself fails with ENOSPC."""
    corpus = _words(tmp_path / "corpus.txt", 1.5)  # 3 MB of uint16 shards on a 2 MB disk
    monkeypatch.setattr(shards, "check_free_space", lambda directory, needed: None)
    with _tmpfs(tmp_path / "small", "2m") as cache:
        dm = _module(corpus, cache)
        with pytest.raises(ShardWriteError) as info:
            dm.prepare_data()
        message = assert_one_line(info.value)
        assert message.startswith(f"writing token shards in {cache / 'shards'} failed (No space left on device)")
        assert "set ZOO_CACHE_DIR (--data.init_args.cache_dir) to a larger disk" in message
        assert not _leftovers(cache), "a half-written shard must never stay"
        monkeypatch.undo()
        with pytest.raises(ShardWriteError, match="not enough disk space"):  # the next run: the pre-check
            _module(corpus, cache).prepare_data()


def test_a_read_only_cache_fails_when_the_data_module_is_built(tmp_path: Path, monkeypatch) -> None:
    corpus = _words(tmp_path / "corpus.txt", 0.01)
    with _tmpfs(tmp_path / "ro", "1m", "ro") as cache:
        with pytest.raises(OSError) as info:
            _module(corpus, cache)
        message = assert_one_line(info.value)
        assert f"cache directory {os.fspath(cache)!r} (from --data.init_args.cache_dir) is not writable" in message
        assert "Read-only file system" in message
        monkeypatch.setenv("ZOO_CACHE_DIR", os.fspath(cache / "zoo"))
        for build in (lambda: TextDataModule(data_files=os.fspath(corpus)),
                      lambda: LabelledTextDataModule(tokenizer="char", shape="encoder")):
            with pytest.raises(OSError, match=r"\(from \$ZOO_CACHE_DIR\) is not writable") as info:
                build()
            assert_one_line(info.value)


def test_a_cache_path_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match=r"cache directory '.*a_file/cache' .* is not writable") as info:
        writable_cache_dir(tmp_path / "a_file" / "cache")
    assert_one_line(info.value)


def test_a_tokenizer_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "tiny", "64k") as cache:
        (cache / "filler").write_bytes(b"\0" * (64 * 1024 - 4096 * 3))
        with pytest.raises(OSError) as info:
            cached_tokenizer_file(["a few distinct characters, but many: " + "".join(map(chr, range(0x4E00, 0x5600)))],
                                  cache, kind="char")
        message = assert_one_line(info.value)
        assert message.startswith(f"cannot write the tokenizer file {cache / 'tokenizers'}")
        assert message.endswith("tokenizer.json: no space left on the device")
        assert not [path for path in cache.rglob(".*tmp*")]


# ---------------------------------------------------------------------------------------------
# Killed builds


_BUILD = """
import sys
from zoo.data import TextDataModule
dm = TextDataModule(objective="clm", data_files=sys.argv[1], tokenizer="char", max_seq_len=32, cache_dir=sys.argv[2])
dm.prepare_data()
"""


def test_a_killed_shard_build_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    corpus = _words(tmp_path / "corpus.txt", 4)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _BUILD, os.fspath(corpus), os.fspath(cache)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((cache / "shards").glob(".*.tmp/train.bin")) or \
                next((cache / "shards").glob(".*.tmp/train.bin")).stat().st_size < 100_000:
            assert child.poll() is None and time.monotonic() < deadline, "the build ended before it could be killed"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = list((cache / "shards").glob(".*.tmp"))
    assert len(left) == 1 and str(child.pid) in left[0].name, "the kill left its temporary (what the next run cleans)"
    dm = _module(corpus, cache)
    dm.prepare_data()
    assert not list(cache.rglob("*.tmp")) and len(dm._tokenized("train")) > 0


def test_only_temporaries_of_dead_builders_on_this_host_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        target = tmp_path / "build"
        stale = temporary_path(target).with_name(temporary_path(target).name.replace(str(os.getpid()), str(dead.pid)))
        running = temporary_path(target).with_name(temporary_path(target).name.replace(str(os.getpid()),
                                                                                         str(alive.pid)))
        other_host = tmp_path / f".build.another-host.{dead.pid}.tmp"
        for path in (stale, running, other_host):
            path.mkdir()
            (path / "train.bin").write_bytes(b"\0" * 10)
        (tmp_path / "unrelated.tmp").write_text("not ours")
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert not stale.exists() and running.exists() and other_host.exists()
        assert (tmp_path / "unrelated.tmp").exists()
    finally:
        alive.kill()
        alive.wait()


def test_a_killed_tokenizer_build_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    script = ("import sys, time\nfrom zoo.data import tokenizers\n"
              "def slow(texts, **kwargs):\n    time.sleep(60)\n"
              "tokenizers.SentencePieceTokenizer.train = slow\n"
              "tokenizers.cached_tokenizer_file(sys.argv[2:], sys.argv[1], vocab_size=500)\n")
    texts = [f"line {i} of some text to train on, " * 5 for i in range(30)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", script, os.fspath(tmp_path), *texts], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "tokenizers").glob("*.lock")):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        directory = next(path for path in (tmp_path / "tokenizers").glob("spm-*") if path.is_dir())
        # what it would have left, killed in the middle of writing its file (zoo.files' atomic write)
        half = files.temporary_path(directory / "tokenizer.model")
        half.with_name(half.name.replace(str(os.getpid()), str(child.pid))).write_bytes(b"half a model")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert list(tmp_path.rglob(f".*{files.TEMP_MARK}*-{child.pid}"))
    path = cached_tokenizer_file(texts, tmp_path, vocab_size=500)
    assert path.parent == directory and not list(tmp_path.rglob(f".*{files.TEMP_MARK}*"))
    assert path.is_file()


# ---------------------------------------------------------------------------------------------
# SentencePiece


def test_a_sentencepiece_failure_is_one_line_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    import sentencepiece as spm

    def fail(**kwargs):
        raise RuntimeError("INTERNAL: src/trainer_interface.cc(1) [something] went wrong\nsecond line")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", fail)
    corpus = _words(tmp_path / "corpus.txt", 0.01)
    dm = TextDataModule(data_files=os.fspath(corpus), vocab_size=300, cache_dir=os.fspath(tmp_path / "cache"))
    with pytest.raises(ValueError) as info:
        _ = dm.tokenizer
    message = assert_one_line(info.value)
    assert message.startswith(f"training a tokenizer on {os.fspath(corpus)!r}: SentencePiece training failed")
    assert "went wrong" in message and "--data.init_args.tokenizer char" in message
