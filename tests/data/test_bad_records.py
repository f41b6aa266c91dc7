"""No silent data loss: every record of a JSON Lines / JSON / CSV / parquet corpus is checked in the
pass that reads it. A bad one is refused in one line naming the file, the line (row, record) and the
field, or — with ``bad_records="skip"`` — left out and counted in one line per file."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from zoo.data import TextDataModule
from zoo.data.corpus import load_texts
from zoo.data.instruction import InstructionDataModule
from zoo.data.labelled import LabelledTextDataModule
from zoo.data.records import read_records

from .helpers import assert_one_line

N, EVERY = 5000, 5  # records, and every EVERY-th (from the 4th) is bad: 1000 bad records, first on line 4


def _texts(n: int = N) -> list[str]:
    return [f"document {i} about {'abc' * (i % 7)} things" for i in range(n)]


def _list_corpus(path: Path) -> Path:
    """The issue's probe: 1,000 of 5,000 JSON Lines records hold a list instead of a string."""
    with open(path, "w") as handle:
        for i, text in enumerate(_texts()):
            handle.write(json.dumps({"text": text.split() if i % EVERY == 3 else text}) + "\n")
    return path


def _module(path: Path, cache_dir: Path, **kwargs) -> TextDataModule:
    return TextDataModule(objective="clm", data_files=os.fspath(path), tokenizer="char", max_seq_len=16,
                          cache_dir=os.fspath(cache_dir), **kwargs)


def test_a_list_instead_of_text_is_refused_naming_file_line_and_field(tmp_path: Path, cache_dir: Path) -> None:
    path = _list_corpus(tmp_path / "train.jsonl")
    dm = _module(path, cache_dir)
    with pytest.raises(ValueError) as info:
        dm.prepare_data()
    message = assert_one_line(info.value)
    assert f"data file {os.fspath(path)!r} line 4: field 'text' is a list, not a string" in message
    assert "--data.init_args.bad_records skip" in message
    assert not list((cache_dir / "shards").glob("*/meta.json")), "no shards from a refused corpus"


def test_skip_leaves_out_exactly_the_bad_records_and_says_so_on_every_run(tmp_path: Path, cache_dir: Path) -> None:
    path = _list_corpus(tmp_path / "train.jsonl")
    expected = f"skipped 1000 of 5000 records of {os.fspath(path)}: field 'text' not a string (first at line 4)"
    for _run in range(2):  # the first run builds the shards, the second reuses them: both say it
        dm = _module(path, cache_dir, bad_records="skip")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dm.prepare_data()
        assert [str(w.message) for w in caught if "skipped" in str(w.message)] == [expected]
    good = [text for i, text in enumerate(_texts()) if i % EVERY != 3]
    assert sorted(dm.documents("train") + dm.documents("validation")) == sorted(good)
    meta = json.loads((dm._shard_directory() / "meta.json").read_text())
    assert sum(meta["documents"].values()) == 4000 and meta["skipped"] == [expected]
    # the two settings never share shards: "error" still refuses after a "skip" run
    with pytest.raises(ValueError, match="line 4"):
        _module(path, cache_dir).prepare_data()


def _write(path: Path, rows: list[dict], fmt: str) -> Path:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import pandas as pd

        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# One bad record (the 3rd) per case; where its position is said to be, and what is said of it.
CASES = {
    "jsonl-null": ("jsonl", {"text": None}, "line 3", ": field 'text' is null"),
    "jsonl-missing": ("jsonl", {"body": "x"}, "line 3", " has no field 'text'"),
    "jsonl-number": ("jsonl", {"text": 7}, "line 3", ": field 'text' is a number, not a string"),
    "json-array-object": ("json", {"text": {"a": 1}}, "record 3", ": field 'text' is an object, not a string"),
    "csv-empty-cell": ("csv", {"text": None}, "line 4", ": field 'text' is empty"),  # line 1 is the header
    "parquet-null": ("parquet", {"text": None}, "row 3", ": field 'text' is null"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_format_names_the_bad_record(tmp_path: Path, cache_dir: Path, case: str) -> None:
    fmt, bad, where, what = CASES[case]
    rows = [{"text": text} for text in _texts(40)]
    rows[2] = bad
    path = _write(tmp_path / f"corpus.{fmt}", rows, fmt)
    with pytest.raises(ValueError) as info:
        _module(path, cache_dir).prepare_data()
    assert f"{path.name}' {where}{what}" in assert_one_line(info.value)
    dm = _module(path, cache_dir, bad_records="skip")
    with pytest.warns(UserWarning, match=rf"skipped 1 of 40 records of .*{path.name}: .*\(first at {where}\)"):
        dm.prepare_data()
    assert len(dm.documents("train") + dm.documents("validation")) == 39


def test_a_malformed_json_line_is_named_by_file_and_line(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": text}) for text in _texts(3000)]
    lines[2500] = '{"text": "a string that never ends}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        _module(path, cache_dir).prepare_data()
    message = assert_one_line(info.value)
    assert f"{os.fspath(path)!r} line 2501 is not valid JSON" in message
    skipped = r"skipped 1 of 3000 records of .*docs.jsonl: not valid JSON \(first at line 2501\)"
    with pytest.warns(UserWarning, match=skipped):
        texts = load_texts(os.fspath(path), bad_records="skip")["train"]
    assert len(texts) == 2999


def test_reading_is_one_pass_of_checked_records(tmp_path: Path) -> None:
    """`read_records` is a generator over the file: records come out as they are checked, and a bad
    one stops the stream there (in error mode) — what came before it was already read once."""
    path = _list_corpus(tmp_path / "train.jsonl")
    stream = read_records(os.fspath(path), "json", {"text": "document"})
    assert [next(stream)["text"] for _ in range(3)] == _texts(3)
    with pytest.raises(ValueError, match="line 4"):
        next(stream)


# ---------------------------------------------------------------------------------------------
# Labelled and instruction data


def _labelled_rows() -> list[dict]:
    return [{"text": f"example {i} {'good' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
            for i in range(60)]


def test_a_malformed_csv_row_surfaces_its_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.csv", _labelled_rows(), "csv")
    lines = path.read_text().splitlines()
    lines[5] = "an unquoted, comma,pos"  # three fields under a two-field header, on line 6
    path.write_text("\n".join(lines) + "\n")
    dm = LabelledTextDataModule(data_files=os.fspath(path), tokenizer="char", shape="encoder")
    with pytest.raises(ValueError) as info:
        _ = dm.labels
    message = assert_one_line(info.value)
    assert f"{os.fspath(path)!r} line 6: expected 2 fields, saw 3" in message
    assert "DatasetGenerationError" not in message
    skipping = LabelledTextDataModule(data_files=os.fspath(path), tokenizer="char", shape="encoder",
                                      bad_records="skip")
    with pytest.warns(UserWarning, match=r"skipped 1 of 60 records of .*train.csv: a row with too many fields "
                                         r"\(first at line 6\)"):
        examples = skipping.raw_examples("train") + skipping.raw_examples("validation")
    assert len(examples) == 59 and skipping.labels == ["neg", "pos"]


def test_a_bad_label_or_an_empty_csv_cell_is_named_by_line(tmp_path: Path) -> None:
    rows = _labelled_rows()
    rows[7]["label"] = ["pos", "neg"]
    path = _write(tmp_path / "train.jsonl", rows, "jsonl")
    with pytest.raises(ValueError, match=r"train.jsonl' line 8: field 'label' is a list \(\['pos', 'neg'\]\), not a "
                                         r"string or an integer"):
        _ = LabelledTextDataModule(data_files=os.fspath(path), tokenizer="char", shape="encoder").labels
    rows = _labelled_rows()
    rows[9]["text"] = ""
    csv_path = _write(tmp_path / "train.csv", rows, "csv")
    text = csv_path.read_text().replace("\n", "\n\n", 3)  # blank lines are no rows, but they are lines
    csv_path.write_text(text)
    dm = LabelledTextDataModule(data_files=os.fspath(csv_path), tokenizer="char", shape="encoder")
    with pytest.raises(ValueError, match=r"train.csv' line 14: field 'text' is empty"):
        _ = dm.labels
    assert csv_path.read_text().splitlines()[13] == ",pos"  # the empty cell, on line 14


def test_integer_csv_labels_stay_integers_and_text_stays_text(tmp_path: Path) -> None:
    rows = [{"text": word, "label": i % 3} for i, word in enumerate(["NA", "null", "007", "None", "1.5", "x"] * 5)]
    dm = LabelledTextDataModule(data_files=os.fspath(_write(tmp_path / "d.csv", rows, "csv")), tokenizer="char",
                                shape="encoder", val_fraction=0.5)
    assert dm.labels == [0, 1, 2]
    texts = {text for text, _ in dm.raw_examples("train") + dm.raw_examples("validation")}
    assert texts == {"NA", "null", "007", "None", "1.5", "x"}


def test_an_instruction_response_that_is_not_text_is_refused_or_skipped(tmp_path: Path) -> None:
    pairs = [{"prompt": f"what is {i} + {i}?", "response": f"{2 * i}"} for i in range(30)]
    pairs[4]["response"] = 8
    path = _write(tmp_path / "pairs.jsonl", pairs, "jsonl")
    with pytest.raises(ValueError, match=r"pairs.jsonl' line 5: field 'response' is a number, not a string"):
        InstructionDataModule(data_files=os.fspath(path), tokenizer="char", shape="decoder").raw_examples("train")
    dm = InstructionDataModule(data_files=os.fspath(path), tokenizer="char", shape="decoder", bad_records="skip")
    with pytest.warns(UserWarning, match="skipped 1 of 30 records"):
        assert len(dm.raw_examples("train") + dm.raw_examples("validation")) == 29


def test_bad_records_must_be_error_or_skip() -> None:
    with pytest.raises(ValueError, match=r"bad_records must be one of \['error', 'skip'\], got 'warn'") as info:
        TextDataModule(bad_records="warn")
    assert_one_line(info.value)


def test_a_local_dataset_directory_is_checked_row_by_row(tmp_path: Path, cache_dir: Path) -> None:
    rows = [{"text": text} for text in _texts(30)]
    rows[11] = {"text": None}
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    _write(folder / "train.parquet", rows, "parquet")
    dm = TextDataModule(dataset_name=os.fspath(folder), tokenizer="char", max_seq_len=16,
                        cache_dir=os.fspath(cache_dir))
    with pytest.raises(ValueError, match=r"dataset '.*my_dataset' split 'train' row 12: field 'text' is null") as info:
        dm.prepare_data()
    assert_one_line(info.value)


def test_skipped_records_are_reported_when_max_documents_stops_the_reading_early(
    tmp_path: Path, cache_dir: Path
) -> None:
    path = _list_corpus(tmp_path / "train.jsonl")
    dm = _module(path, cache_dir, bad_records="skip", max_documents=40)
    with pytest.warns(UserWarning, match=r"skipped 10 of 50 records of .*train.jsonl: field 'text' not a string"):
        dm.prepare_data()
    assert len(dm.documents("train") + dm.documents("validation")) == 40


def test_a_suspended_csv_reader_does_not_swallow_other_warnings(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.csv", _labelled_rows(), "csv")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        stream = read_records(os.fspath(path), "csv", {"text": "text", "label": "label"}, bad_records="skip")
        next(stream)
        warnings.warn("raised elsewhere while the reader waits", UserWarning, stacklevel=1)
        assert len(list(stream)) == 59
    assert [str(w.message) for w in seen] == ["raised elsewhere while the reader waits"]
