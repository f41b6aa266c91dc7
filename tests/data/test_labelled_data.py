"""LabelledTextDataModule: files in every format, label maps, formats per family shape, bad input in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from zoo.data.classification import DOC_LABELS, python_docs_passages
from zoo.data.labelled import LabelledTextDataModule
from zoo.data.tokenizers import load_tokenizer

ROWS = [{"sentence": f"{word} example number {i}", "tag": tag}
        for i in range(12) for word, tag in (("alpha", "b"), ("beta", "a"), ("gamma", "c"))]


def write(path: Path, rows: list[dict], fmt: str) -> Path:
    if fmt == "json":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def module(files, **kwargs) -> LabelledTextDataModule:
    defaults = dict(text_field="sentence", label_field="tag", tokenizer="char", batch_size=4, shape="encoder")
    return LabelledTextDataModule(data_files=files, **{**defaults, **kwargs})


@pytest.mark.parametrize("fmt,ext", [("json", "jsonl"), ("csv", "csv"), ("parquet", "parquet")])
def test_every_format_gives_the_same_sorted_label_map(tmp_path, fmt, ext):
    train = write(tmp_path / f"train.{ext}", ROWS, fmt)
    val = write(tmp_path / f"val.{ext}", ROWS[:6], fmt)
    dm = module({"train": str(train), "validation": str(val)})
    assert dm.labels == ["a", "b", "c"] and dm.num_labels == 3
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["labels"].tolist() == [1, 0, 2, 1]  # b, a, c, b in the file's order
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_integer_labels_sort_numerically_and_a_missing_validation_split_is_cut_from_train(tmp_path):
    rows = [{"text": f"text {i}", "label": [10, 2, 7][i % 3]} for i in range(60)]
    dm = LabelledTextDataModule(data_files=str(write(tmp_path / "d.jsonl", rows, "json")), tokenizer="char",
                                shape="decoder", val_fraction=0.2)
    assert dm.labels == [2, 7, 10]
    train, val = dm.raw_examples("train"), dm.raw_examples("validation")
    assert train and val and not {t for t, _ in train} & {t for t, _ in val}
    assert dm.predict_split == "validation"


def test_label_set_fixes_the_order_and_refuses_labels_outside_it(tmp_path):
    files = str(write(tmp_path / "d.jsonl", ROWS, "json"))
    assert module(files, label_set=["c", "b", "a"]).labels == ["c", "b", "a"]
    with pytest.raises(ValueError, match=r"training label\(s\) \['c'\] are not in label_set"):
        _ = module(files, label_set=["a", "b"]).labels


def test_formats_per_shape(tmp_path):
    files = str(write(tmp_path / "d.jsonl", ROWS, "json"))
    dm = module(files, max_seq_len=8)
    dm.setup("fit")
    tok = dm.tokenizer
    encoder = next(iter(dm.val_dataloader()))
    first = encoder["input_ids"][0][encoder["attention_mask"][0]].tolist()
    assert first[0] == tok.cls_id and first[-1] == tok.sep_id and len(first) == 8  # cut to max_seq_len
    dm.requested_shape = "decoder"
    decoder = next(iter(dm.val_dataloader()))
    row = decoder["input_ids"][0][decoder["attention_mask"][0]].tolist()
    assert row[-1] == tok.eos_id and tok.cls_id not in row
    assert tok.decode(row) in {r["sentence"][:7] for r in ROWS}  # text cut to leave room for </s>


def test_a_missing_field_fails_in_one_line_listing_the_fields(tmp_path):
    files = str(write(tmp_path / "d.jsonl", ROWS, "json"))
    with pytest.raises(ValueError, match=r"has no field 'label' \(label_field\); its fields are \['sentence', 'tag'\]"):
        LabelledTextDataModule(data_files=files, text_field="sentence")
    with pytest.raises(ValueError, match=r"has no field 'text' \(text_field\)"):
        LabelledTextDataModule(data_files=str(write(tmp_path / "d.csv", ROWS, "csv")), label_field="tag")


def test_a_validation_label_unseen_in_training_is_refused(tmp_path):
    train = write(tmp_path / "train.jsonl", ROWS, "json")
    val = write(tmp_path / "val.jsonl", [*ROWS[:3], {"sentence": "delta", "tag": "d"}], "json")
    unseen = r"validation label 'd' \(1 example\(s\)\) does not occur in the training split"
    with pytest.raises(ValueError, match=unseen):
        _ = module({"train": str(train), "validation": str(val)}).labels


def test_null_labels_and_unknown_splits_are_refused(tmp_path):
    rows = [*ROWS, {"sentence": "no label", "tag": None}]
    with pytest.raises(ValueError, match=r"d.jsonl' line 37: field 'tag' is null; fix it, or pass "
                                         r"--data.init_args.bad_records skip"):
        _ = module(str(write(tmp_path / "d.jsonl", rows, "json"))).labels
    with pytest.raises(ValueError, match="needs a 'train' split"):
        module({"training": str(write(tmp_path / "e.jsonl", ROWS, "json"))})


def test_state_round_trips_and_refuses_another_label_map(tmp_path):
    files = str(write(tmp_path / "d.jsonl", ROWS, "json"))
    dm = module(files)
    state = dm.state_dict()
    assert state["labels"] == ["a", "b", "c"] and state["kind"] == "classification"
    assert load_tokenizer(state["tokenizer_file"]).fingerprint == dm.tokenizer.fingerprint
    module(files).load_state_dict(state)
    with pytest.raises(ValueError, match=r"checkpoint labels \['a', 'c'\] differ"):
        module(files).load_state_dict({**state, "labels": ["a", "c"]})


def test_builtin_task_is_balanced_and_split_by_document():
    splits = python_docs_passages(0, train_per_class=50, eval_per_class=10)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [250, 50, 50]
    for split in splits.values():
        assert sorted(set(label for _, label in split)) == list(range(len(DOC_LABELS)))
    texts = {s: {t for t, _ in items} for s, items in splits.items()}
    assert not texts["train"] & texts["validation"] and not texts["train"] & texts["test"]
    dm = LabelledTextDataModule(tokenizer="char", shape="encoder", builtin_train_per_class=20, max_documents=30)
    assert dm.labels == list(DOC_LABELS) and dm.predict_split == "test"
    dm.setup("fit")
    assert len(dm.encoded("train")) == 30 and isinstance(next(iter(dm.train_dataloader()))["labels"], torch.Tensor)
