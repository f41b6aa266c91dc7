"""Token shards: what lands on disk, text read the way users have it, and bad input refused in one
line before training with nothing half-written left behind."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo.data import TextDataModule
from zoo.data import shards as shards_module
from zoo.data.shards import token_dtype, write_shards
from zoo.data.splits import unit_hash
from zoo.data.tokenizers import CharTokenizer

from .helpers import assert_one_line

VERSE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"


def _lines(n: int) -> list[str]:
    return [f"line {i} says {'abc' * (i % 5)} and more" for i in range(n)]


def test_shards_hold_every_document_with_eos_split_by_unit_hash(tmp_path: Path, cache_dir: Path) -> None:
    lines = _lines(300)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n")
    dm = TextDataModule(objective="clm", data_files=os.fspath(corpus), tokenizer="char", max_seq_len=16,
                        val_fraction=0.2, cache_dir=os.fspath(cache_dir))
    train, val = dm._tokenized("train"), dm._tokenized("validation")
    tok = dm.tokenizer
    for split, blocks in (("train", train), ("validation", val)):
        expected = [i for line in lines if (unit_hash(line, dm.seed) < 0.2) == (split == "validation")
                    for i in tok.encode(line) + [tok.eos_id]]
        tokens = np.memmap(blocks.path, dtype=token_dtype(tok.vocab_size), mode="r")
        assert tokens.dtype == np.uint16 and tokens.tolist() == expected
        assert len(blocks) == len(expected) // 16  # clm: full blocks only
        assert blocks[1]["input_ids"] == expected[16:32]
    assert not list(cache_dir.glob("shards/.*.tmp")), "no temporary build left"


def _whole_file_verse(tmp_path: Path, cache_dir: Path, val_copies: int, batch_size: int) -> TextDataModule:
    """A Tiny-Shakespeare-like corpus: one training file of the verse 40 times, read as one document."""
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text(VERSE * 40)
    val.write_text(VERSE * val_copies)
    return TextDataModule(objective="clm", data_files={"train": os.fspath(train), "validation": os.fspath(val)},
                          sample_by="document", tokenizer="char", max_seq_len=64, batch_size=batch_size,
                          cache_dir=os.fspath(cache_dir))


def test_a_whole_file_corpus_packs_across_line_breaks(tmp_path: Path, cache_dir: Path) -> None:
    dm = _whole_file_verse(tmp_path, cache_dir, val_copies=4, batch_size=4)
    assert dm.documents("train") == [VERSE * 40]  # one document: the whole file, newlines kept
    assert "\n" in dm.tokenizer._char_to_id
    block = dm.tokenizer.decode(dm._tokenized("train")[0]["input_ids"])
    assert block == (VERSE * 40)[:64] and block.count("\n") >= 3
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["input_ids"].shape == (4, 64)


def test_sample_by_paragraph_and_line(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(VERSE * 3)
    by = {mode: TextDataModule(data_files=os.fspath(path), sample_by=mode, tokenizer="char",
                               cache_dir=os.fspath(cache_dir), max_seq_len=8) for mode in ("line", "paragraph")}
    docs = {mode: dm.documents("train") + dm.documents("validation") for mode, dm in by.items()}
    assert sorted(docs["paragraph"]) == sorted(["First Citizen:\nBefore we proceed any further, hear me speak.",
                                                "All:\nSpeak, speak."] * 3)
    assert len(docs["line"]) == 12 and not any("\n" in doc for doc in docs["line"])
    with pytest.raises(ValueError) as error:
        TextDataModule(data_files=os.fspath(path), sample_by="sentence")
    assert "sample_by" in assert_one_line(error.value)


def test_a_local_parquet_directory_streams_like_a_hub_dataset(tmp_path: Path, cache_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = tmp_path / "ds" / "data"
    directory.mkdir(parents=True)
    pq.write_table(pa.table({"text": _lines(200)}), directory / "train-00000.parquet")
    dm = TextDataModule(dataset_name=os.fspath(tmp_path / "ds"), streaming=True, tokenizer="char", max_seq_len=16,
                        cache_dir=os.fspath(cache_dir))
    assert sorted(dm.documents("train") + dm.documents("validation")) == sorted(_lines(200))
    assert len(dm._tokenized("train")) > 0


def test_a_directory_of_mixed_formats_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some text\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "more"}) + "\n")
    with pytest.raises(ValueError) as error:
        TextDataModule(data_files=os.fspath(tmp_path))
    message = assert_one_line(error.value)
    assert "mix formats" in message and "a.txt" in message and "b.jsonl" in message


def test_an_unreadable_file_in_a_glob_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(30):
        (tmp_path / f"part-{i:02d}.txt").write_text(f"document {i}\n")
    bad = os.fspath(tmp_path / "part-17.txt")
    real_access = os.access
    # Root reads any file whatever its mode, so make the check see what a normal user would.
    monkeypatch.setattr(os, "access", lambda path, mode: path != bad and real_access(path, mode))
    with pytest.raises(PermissionError) as error:
        TextDataModule(data_files=os.fspath(tmp_path / "part-*.txt"))
    assert "part-17.txt" in assert_one_line(error.value)


def test_too_little_disk_fails_before_writing(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(_lines(100)))
    dm = TextDataModule(data_files=os.fspath(corpus), tokenizer="char", cache_dir=os.fspath(cache_dir), max_seq_len=8)
    _ = dm.tokenizer
    monkeypatch.setattr(shards_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**6, 10**6, 100))
    with pytest.raises(OSError) as error:
        dm.prepare_data()
    assert "not enough disk space" in assert_one_line(error.value)
    assert all(p.suffix == ".lock" for p in (cache_dir / "shards").iterdir()), "only the lock file is left"


def test_an_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    tokenizer = CharTokenizer.train(["abc"])

    def documents():
        for i in range(2500):
            if i == 2100:
                raise OSError("disk went away")
            yield "train", "abc"

    with pytest.raises(OSError):
        write_shards(tmp_path / "shards", documents, tokenizer, estimated_bytes=0)
    assert list(tmp_path.iterdir()) == []


def test_shards_of_another_tokenizer_are_refused(tmp_path: Path, cache_dir: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(_lines(100)))
    settings = {"data_files": os.fspath(corpus), "tokenizer": "char", "cache_dir": os.fspath(cache_dir),
                "max_seq_len": 8}
    first = TextDataModule(**settings)
    first.prepare_data()
    meta_file = first._tokenized("train").path.with_name("meta.json")
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "tokenizer": "0123456789abcdef"}))
    with pytest.raises(ValueError) as error:
        TextDataModule(**settings).setup("fit")
    assert "written by tokenizer 0123456789abcdef" in assert_one_line(error.value)


@pytest.mark.usefixtures("one_thread")  # a tiny model: threads only contend
def test_a_char_model_trained_on_a_whole_file_writes_multi_line_text(tmp_path: Path, cache_dir: Path) -> None:
    """The point of ``sample_by="document"``: trained across line breaks, the model goes on past them
    (one document per line would end every sample at its first newline)."""
    import torch

    from zoo.generation import generate
    from zoo.models import GPT, GPTConfig

    torch.manual_seed(0)
    dm = _whole_file_verse(tmp_path, cache_dir, val_copies=2, batch_size=8)
    dm.setup("fit")
    tok = dm.tokenizer
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, max_seq_len=64, embed_dim=64, num_layers=2, num_heads=4,
                          pad_token_id=tok.pad_id, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batches = [batch["input_ids"] for batch in dm.train_dataloader()]
    for step in range(150):
        ids = batches[step % len(batches)]
        loss = torch.nn.functional.cross_entropy(model(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prompt = torch.tensor([tok.encode("First Citizen:")])
    out = generate(model.eval(), prompt, max_new_tokens=48, eos_token_id=tok.eos_id)
    text = tok.decode(out[0, prompt.shape[1]:].tolist())
    assert loss.item() < 0.5, loss.item()
    assert text.count("\n") >= 3 and "hear me speak." in text, repr(text)
