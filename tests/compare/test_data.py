"""Task data: deterministic per seed, disjoint splits, longer test inputs, and one-line errors."""

from __future__ import annotations

import json

import pytest

from zoo.compare.data import SPLITS, SuiteDataModule
from zoo.compare.synthetic import is_balanced
from zoo.compare.tasks import task_from_config
from zoo.data.corpus import builtin_corpus
from zoo.data.splits import assign_splits
from zoo.data.tokenizers import SentencePieceTokenizer, cached_tokenizer_file, load_tokenizer

SMALL = {"train_size": 300, "val_size": 40, "test_size": 40}


def texts(data, split):
    key = "source" if data.kind == "seq2seq" else "input_ids"
    return [tuple(example[key]) for example in data.examples[split]]


@pytest.mark.parametrize("task", ["copy", "reverse", "sort", "addition", "brackets"])
def test_synthetic_tasks_are_deterministic_disjoint_and_longer_at_test(task):
    spec = task_from_config({"type": task, **SMALL})
    first, again, other = spec.build(0), spec.build(0), spec.build(1)
    assert first.examples == again.examples
    assert first.examples["train"] != other.examples["train"]
    splits = {split: set(texts(first, split)) for split in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [300, 40, 40]  # distinct within a split, too
    assert not splits["train"] & splits["validation"]
    assert not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]
    decode = first.tokenizer.decode

    def size(ids):  # the length the task counts: digits of the longer operand for addition
        text = decode(ids)
        return max(map(len, text.split("+"))) if task == "addition" else len(text)

    longest_train = max(size(t) for s in ("train", "validation") for t in splits[s])
    assert min(size(t) for t in splits["test"]) > longest_train


def test_synthetic_targets_follow_their_rules():
    for task, rule in [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s))),
                       ("addition", lambda s: str(sum(map(int, s.split("+")))))]:
        data = task_from_config({"type": task, **SMALL}).build(3)
        decode = data.tokenizer.decode
        for example in data.examples["train"][:50] + data.examples["test"][:10]:
            assert decode(example["target"]) == example["target_text"] == rule(decode(example["source"]))
        assert data.equal_length == (task != "addition")


def test_brackets_labels_are_right_and_balanced():
    data = task_from_config({"type": "brackets", **SMALL}).build(0)
    assert data.label_names == ("unbalanced", "balanced")
    for split in SPLITS:
        labels = [e["label"] for e in data.examples[split]]
        assert sum(labels) == len(labels) // 2
        for example in data.examples[split]:
            assert is_balanced(data.tokenizer.decode(example["input_ids"])) == bool(example["label"])


def test_stdlib_docs_labels_passages_by_area_without_naming_the_module():
    spec = task_from_config({"type": "stdlib_docs", "tokenizer": "char", "train_per_class": 30,
                             "eval_per_class": 8})
    data, again = spec.build(0), spec.build(0)
    assert data.examples == again.examples
    assert len(data.label_names) == 5
    splits = {split: {tuple(e["input_ids"]) for e in data.examples[split]} for split in SPLITS}
    assert not splits["train"] & splits["validation"] and not splits["train"] & splits["test"]
    for split in SPLITS:
        assert {e["label"] for e in data.examples[split]} == set(range(5))
    passages = [data.tokenizer.decode(e["input_ids"]) for e in data.examples["train"]]
    assert not any(p.startswith(("json.", "os.path", "collections.")) for p in passages)


def test_language_modelling_blocks_and_bytes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"document {i}: the quick brown fox, ünïcode {i * 7}" for i in range(200)))
    spec = task_from_config({"type": "lm", "files": str(corpus), "tokenizer": "char", "block_len": 16,
                             "val_blocks": 4, "test_blocks": 4, "val_fraction": 0.2, "test_fraction": 0.2})
    data = spec.build(0)
    assert data.examples == spec.build(0).examples
    assert {len(e["input_ids"]) for split in SPLITS for e in data.examples[split]} == {16}
    assert len(data.examples["validation"]) == len(data.examples["test"]) == 4
    byte_lengths = data.tokenizer.token_byte_lengths()
    assert byte_lengths[data.tokenizer.encode("ü")[0]] == 2
    assert byte_lengths[data.tokenizer.eos_id] == 0


def test_sentencepiece_token_bytes_add_up_to_the_text():
    docs = builtin_corpus()[:80]
    tokenizer = SentencePieceTokenizer.train(docs, vocab_size=400, num_sentinels=0)
    byte_lengths = tokenizer.token_byte_lengths()
    for text in docs[:20] + ["naïve café ☕ — 😀 unseen bytes"]:
        assert sum(byte_lengths[i] for i in tokenizer.encode(text)) == len(text.encode())


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_user_jsonl_tasks(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"source": f"in {i}", "target": f"out {i}"} for i in range(100)])
    data = task_from_config({"type": "seq2seq", "name": "mine", "files": pairs}).build(0)
    assert data.name == "mine" and data.kind == "seq2seq"
    assert sum(len(v) for v in data.examples.values()) == 100
    assert data.examples == task_from_config({"type": "seq2seq", "files": pairs}).build(0).examples
    given = {"train": pairs, "validation": pairs, "test": pairs}
    assert len(task_from_config({"type": "seq2seq", "files": given}).build(0).examples["test"]) == 100

    labelled = write_jsonl(tmp_path / "labelled.jsonl",
                           [{"body": f"text {i}", "tag": ["spam", "ham", 3][i % 3]} for i in range(90)])
    data = task_from_config({"type": "classification", "files": labelled, "text_field": "body",
                             "label_field": "tag"}).build(0)
    assert data.label_names == ("3", "ham", "spam")
    batch = next(iter(SuiteDataModule(data, batch_size=4).train_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].shape == (4,)


@pytest.mark.parametrize("item, words", [
    ({"type": "nope"}, ["unknown task 'nope'"]),
    ({"type": "copy", "max_lenn": 3}, ["task 'copy'", "unknown option 'max_lenn'"]),
    ({"type": "copy", "max_len": 5, "test_min_len": 4}, ["task 'copy'", "longer"]),
    ({"type": "reverse", "train_size": 0}, ["train_size=0"]),
    ({"type": "lm", "block_len": 2}, ["block_len=2"]),
    ({"type": "lm", "tokenizer": "bpe"}, ["task 'lm'", "tokenizer must be 'sentencepiece' or 'char', got 'bpe'"]),
    ({"type": "stdlib_docs", "tokenizer": "word"}, ["task 'stdlib_docs'", "got 'word'"]),
])
def test_bad_task_options_fail_in_one_line(item, words):
    with pytest.raises(ValueError) as error:
        task_from_config(item)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_jsonl_missing_field_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"source": "a", "target": "b"}, {"source": "c", "answer": "d"}])
    with pytest.raises(ValueError) as error:
        task_from_config({"type": "seq2seq", "files": path})
    message = str(error.value)
    assert "\n" not in message
    assert f"{path}:2" in message and "'target'" in message and "target_field" in message
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        task_from_config({"type": "classification", "files": str(tmp_path / "missing.jsonl")})


def test_held_out_records_are_the_ones_the_shared_split_assigns(tmp_path):
    records = [{"source": f"in {i}", "target": f"out {i}"} for i in range(200)]
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    data = task_from_config({"type": "seq2seq", "files": path, "val_fraction": 0.2, "test_fraction": 0.1}).build(3)
    keys = [json.dumps([r["source"], r["target"]]) for r in records]
    where = assign_splits(keys, 3, {"validation": 0.2, "test": 0.1})  # zoo fit's split, same seed
    for split in SPLITS:
        expected = [r["target"] for r, w in zip(records, where, strict=True) if w == split]
        assert [e["target_text"] for e in data.examples[split]] == expected


def test_a_split_left_empty_fails_in_one_line(tmp_path):
    path = write_jsonl(tmp_path / "two.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    with pytest.raises(ValueError) as error:
        task_from_config({"type": "classification", "files": path, "val_fraction": 0.01,
                          "test_fraction": 0.01}).build(0)
    message = str(error.value)
    assert "\n" not in message and "task 'classification': 2 distinct item(s) leave the" in message
    assert "split empty" in message


@pytest.mark.parametrize("kind", ["char", "sentencepiece"])
def test_text_tasks_train_their_tokenizer_into_zoo_fits_cache(tmp_path, kind):
    records = [{"text": f"passage number {i} about files, sockets and text", "label": i % 2} for i in range(120)]
    path = write_jsonl(tmp_path / "labelled.jsonl", records)
    spec = task_from_config({"type": "classification", "files": path, "tokenizer": kind, "vocab_size": 300})
    data = spec.build(0, cache_dir=tmp_path / "cache")
    train_texts = [data.tokenizer.decode(e["input_ids"]) for e in data.examples["train"]]
    cached = cached_tokenizer_file(train_texts, tmp_path / "cache", kind=kind, vocab_size=300, num_sentinels=0)
    assert [p.parent for p in (tmp_path / "cache" / "tokenizers").glob("*/tokenizer.*")] == [cached.parent]
    assert load_tokenizer(cached).fingerprint == data.tokenizer.fingerprint
