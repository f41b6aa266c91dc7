"""The synthetic tasks as zoo fit data: ``InstructionDataModule(builtin=copy|reverse|sort|addition)``
and ``LabelledTextDataModule(builtin="brackets")`` — deterministic per seed, disjoint splits, longer
test inputs, targets that follow their rule, one-line errors."""

from __future__ import annotations

import pytest

from zoo.data import InstructionDataModule, LabelledTextDataModule
from zoo.data.synthetic import is_balanced

SMALL = {"train_size": 300, "val_size": 40, "test_size": 40}
SPLITS = ("train", "validation", "test")
RULES = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s)),
         "addition": lambda s: str(sum(map(int, s.split("+"))))}


def data(task: str, seed: int = 0, **synthetic):
    cls = LabelledTextDataModule if task == "brackets" else InstructionDataModule
    return cls(builtin=task, synthetic={**SMALL, **synthetic}, tokenizer="char", seed=seed, shape="decoder")


def inputs(dm, split: str) -> set[str]:
    return {example[0] for example in dm.raw_examples(split)}


@pytest.mark.parametrize("task", ["copy", "reverse", "sort", "addition", "brackets"])
def test_synthetic_tasks_are_deterministic_disjoint_and_longer_at_test(task):
    first, again, other = data(task), data(task), data(task, seed=1)
    assert all(first.raw_examples(s) == again.raw_examples(s) for s in SPLITS)
    assert first.raw_examples("train") != other.raw_examples("train")
    splits = {split: inputs(first, split) for split in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [300, 40, 40]  # distinct within a split, too
    assert not splits["train"] & splits["validation"] and not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]

    def size(text):  # the length the task counts: digits of the longer operand for addition
        return max(map(len, text.split("+"))) if task == "addition" else len(text)

    assert min(map(size, splits["test"])) > max(size(t) for s in ("train", "validation") for t in splits[s])
    assert not first.tokenizer.sentinel_ids  # a character task: no span sentinels in its vocabulary


@pytest.mark.parametrize("task", list(RULES))
def test_synthetic_targets_follow_their_rules(task):
    dm = data(task, seed=3)
    for source, target in dm.raw_examples("train")[:50] + dm.raw_examples("test")[:10]:
        assert target == RULES[task](source)
    encoded = dm.encoded("train")[0]
    assert dm.tokenizer.decode(encoded[1]) == dm.raw_examples("train")[0][1]  # one character per token


def test_brackets_labels_are_right_and_balanced():
    dm = data("brackets")
    assert dm.labels == ["unbalanced", "balanced"]
    for split in SPLITS:
        labels = [label for _, label in dm.raw_examples(split)]
        assert sum(labels) == len(labels) // 2
        assert all(is_balanced(text) == bool(label) for text, label in dm.raw_examples(split))


@pytest.mark.parametrize("make, words", [
    (lambda: data("copy", max_len=5, test_min_len=4), ["builtin='copy'", "longer"]),
    (lambda: data("reverse", train_size=0), ["train_size=0"]),
    (lambda: InstructionDataModule(builtin="sort"), ["builtin='sort'", "tokenizer: char"]),
    (lambda: InstructionDataModule(synthetic={"train_size": 3}), ["synthetic sizes apply", "python_docs"]),
    (lambda: InstructionDataModule(builtin="brackets", tokenizer="char"), ["builtin='brackets'", "'copy'"]),
    (lambda: LabelledTextDataModule(builtin="copy", tokenizer="char"), ["builtin='copy'", "'brackets'"]),
])
def test_bad_synthetic_options_fail_in_one_line(make, words):
    with pytest.raises(ValueError) as error:
        make()
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


@pytest.mark.parametrize("stop", [5, 8])  # mid-epoch, and at an epoch's end (8 batches per epoch)
def test_fine_tuning_batches_resume_exactly(stop):
    dm = data("reverse", train_size=64)
    dm.setup("fit")

    def indices(loader, count):
        out = []
        while len(out) < count:  # passes as Lightning makes them: each pass a new epoch
            for batch in loader:
                out.append(batch["index"].tolist())
                if len(out) == count:
                    break
        return out

    straight = indices(dm.train_dataloader(), 20)
    first = dm.train_dataloader()
    assert indices(first, stop) == straight[:stop]
    resumed = dm.train_dataloader()
    resumed.load_state_dict(first.state_dict())
    assert indices(resumed, 20 - stop) == straight[stop:]
    assert straight[:8] != straight[8:16]  # a fresh order each epoch
