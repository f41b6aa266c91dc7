"""The built-in corpus, the hash split, and user files (good and bad) through `datasets`."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from pydoc_data.topics import topics

import pytest

from zoo.data.corpus import (
    builtin_corpus,
    documents_fingerprint,
    load_texts,
    resolve_data_files,
)
from zoo.data.splits import split_documents

from .helpers import assert_one_line

# ---------------------------------------------------------------------------------------------
# Built-in corpus


def test_builtin_corpus_is_real_text_of_modest_size(corpus: list[str]) -> None:
    total = sum(len(doc) for doc in corpus)
    assert len(corpus) > 500
    assert 300_000 < total < 5_000_000
    assert all(doc.strip() for doc in corpus)
    assert len(set(corpus)) == len(corpus), "duplicates would straddle the split"
    # Both sources are present: a reference-manual topic and a stdlib docstring.
    assert topics["assert"].strip() in corpus
    assert any(doc.startswith("json.dumps\n\n") and "JSON formatted ``str``" in doc for doc in corpus)


def test_builtin_corpus_is_deterministic_across_processes(corpus: list[str]) -> None:
    assert builtin_corpus() == corpus
    # A fresh interpreter with another hash seed: set/dict order must not leak into the corpus.
    code = "from zoo.data.corpus import builtin_corpus, documents_fingerprint as f; print(f(builtin_corpus()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == documents_fingerprint(corpus)


def test_builtin_corpus_returns_a_fresh_list() -> None:
    first = builtin_corpus()
    first.clear()
    assert builtin_corpus()


def test_documents_fingerprint_respects_boundaries() -> None:
    assert documents_fingerprint(["ab", "c"]) != documents_fingerprint(["a", "bc"])
    assert documents_fingerprint(["a", "b"]) != documents_fingerprint(["b", "a"])


# ---------------------------------------------------------------------------------------------
# Split


def test_split_is_deterministic_disjoint_and_complete(corpus: list[str]) -> None:
    train, val = split_documents(corpus, val_fraction=0.05, seed=7)
    assert (train, val) == split_documents(corpus, val_fraction=0.05, seed=7)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(corpus)
    assert 0.02 < len(val) / len(corpus) < 0.08
    # Order within each side follows the input.
    assert train == [doc for doc in corpus if doc in set(train)]


def test_split_does_not_depend_on_document_order(corpus: list[str]) -> None:
    shuffled = corpus[:]
    random.Random(0).shuffle(shuffled)
    _, val = split_documents(corpus, 0.1, seed=3)
    _, val_shuffled = split_documents(shuffled, 0.1, seed=3)
    assert set(val) == set(val_shuffled)
    # Adding documents leaves the others where they were.
    _, val_prefix = split_documents(corpus[:400], 0.1, seed=3)
    assert set(val_prefix) == set(val) & set(corpus[:400])


def test_split_changes_with_seed(corpus: list[str]) -> None:
    assert split_documents(corpus, 0.1, seed=0)[1] != split_documents(corpus, 0.1, seed=1)[1]


def test_split_never_leaves_a_side_empty() -> None:
    for seed in range(20):
        train, val = split_documents(["first document", "second document"], 0.01, seed)
        assert len(train) == len(val) == 1
        train, val = split_documents(["x", "y", "z"], 0.99, seed)
        assert train and val


def test_split_keeps_duplicates_together() -> None:
    docs = ["same text"] * 3 + [f"doc {i}" for i in range(50)]
    for seed in range(10):
        train, val = split_documents(docs, 0.2, seed)
        assert docs.count("same text") in (train.count("same text"), val.count("same text"))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction") as info:
        split_documents(["a", "b"], fraction, 0)
    assert_one_line(info.value)


# ---------------------------------------------------------------------------------------------
# User files


@pytest.fixture
def corpus_lines(corpus: list[str]) -> list[str]:
    """Real lines of text from the built-in corpus."""
    return [line for doc in corpus[100:160] for line in doc.splitlines() if line.strip()][:200]


def test_text_file_gives_one_document_per_nonempty_line(
    tmp_path: Path, cache_dir: Path, corpus_lines: list[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("\n\n".join(corpus_lines[:20]) + "\n", encoding="utf-8")
    texts = load_texts(os.fspath(path), cache_dir=cache_dir)
    assert texts == {"train": corpus_lines[:20]}


def test_jsonl_with_custom_field_and_validation_split(tmp_path: Path, cache_dir: Path, corpus_lines: list[str]) -> None:
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text("".join(json.dumps({"body": t, "id": i}) + "\n" for i, t in enumerate(corpus_lines[:30])))
    val.write_text("".join(json.dumps({"body": t}) + "\n" for t in corpus_lines[30:35]))
    texts = load_texts(
        {"train": os.fspath(train), "validation": [os.fspath(val)]}, text_field="body", cache_dir=cache_dir
    )
    assert texts == {"train": corpus_lines[:30], "validation": corpus_lines[30:35]}


def test_json_array_file_and_glob(tmp_path: Path, cache_dir: Path, corpus_lines: list[str]) -> None:
    for i in range(2):
        (tmp_path / f"part{i}.json").write_text(json.dumps([{"text": t} for t in corpus_lines[i * 5 : i * 5 + 5]]))
    texts = load_texts(os.fspath(tmp_path / "part*.json"), cache_dir=cache_dir)
    assert texts["train"] == corpus_lines[:10]


def test_parquet_file(tmp_path: Path, cache_dir: Path, corpus_lines: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"content": corpus_lines[:12]}), path)
    assert load_texts([os.fspath(path)], text_field="content", cache_dir=cache_dir)["train"] == corpus_lines[:12]
    with pytest.raises(ValueError, match="text_field 'text'") as info:
        resolve_data_files(os.fspath(path))
    assert "docs.parquet" in assert_one_line(info.value)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the error must contain)."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\t\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    no_field = tmp_path / "records.jsonl"
    no_field.write_text('{"body": "hello"}\n')
    unknown = tmp_path / "notes.docx"
    unknown.write_text("hello")
    not_json = tmp_path / "broken.json"
    not_json.write_text("{not json\n")
    return {
        "missing": (tmp_path / "missing.txt", "does not exist"),
        "empty": (empty, "empty"),
        "blank": (blank, "empty"),
        "latin1": (latin1, "UTF-8"),
        "no_field": (no_field, "text_field 'text'"),
        "unknown": (unknown, "unknown extension"),
        "not_json": (not_json, "neither JSON Lines nor JSON"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "blank", "latin1", "no_field", "unknown", "not_json"])
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    path, expected = _bad_files(tmp_path)[case]
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        resolve_data_files(os.fspath(path))
    message = assert_one_line(info.value)
    assert expected in message
    assert path.name in message


def test_non_utf8_detected_past_the_first_chunk(tmp_path: Path) -> None:
    path = tmp_path / "late.txt"
    path.write_bytes(b"fine text\n" * 200_000 + b"\xff\n")  # ~2 MB: the bad byte is in a later chunk
    with pytest.raises(ValueError, match="UTF-8") as info:
        resolve_data_files(os.fspath(path))
    assert "late.txt" in assert_one_line(info.value)


def test_split_boundary_multibyte_char_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "snow.txt"
    path.write_bytes(b"a" * ((1 << 20) - 1) + "\u2603\n".encode())  # a 3-byte char across chunks
    files, data_format = resolve_data_files(os.fspath(path))
    assert data_format == "text" and files == {"train": [os.fspath(path)]}


@pytest.mark.parametrize(
    ("data_files", "expected"),
    [
        ({"training": "x.txt"}, "unknown split"),
        ({"validation": "x.txt"}, "'train' split"),
        (["a.txt", "b.jsonl"], "mix formats"),
        ("nothing-*.txt", "matches no files"),
    ],
)
def test_bad_data_files_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_files, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("x.txt", "a.txt", "b.jsonl"):
        (tmp_path / name).write_text('{"text": "hello"}\n')
    with pytest.raises((ValueError, FileNotFoundError), match=expected) as info:
        resolve_data_files(data_files)
    assert_one_line(info.value)


def test_hub_dataset_fails_fast_offline(cache_dir: Path) -> None:
    with pytest.raises(ConnectionError, match="no-such/dataset") as info:
        load_texts(dataset_name="no-such/dataset", cache_dir=cache_dir)
    assert "data_files" in assert_one_line(info.value)
