"""Synthetic tasks generated from a seed: copy, reverse, sort and multi-digit addition (source →
target strings, ``InstructionDataModule(builtin=...)``), and balanced brackets (text → label,
``LabelledTextDataModule(builtin="brackets")``); ``SyntheticSplits`` sizes them.

Every split is drawn from one ``random.Random`` seeded by the task name and the seed, so a seed
always gives the same examples, and no string appears in two splits (each draw is checked against
everything drawn before). The test split uses longer inputs than anything in training: it measures
length generalisation, not memorisation.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: Symbols of the string tasks (copy, reverse, sort).
LETTERS = "abcdefghijklmnop"
DIGITS = "0123456789"
#: Two bracket kinds: counting alone cannot tell balanced from unbalanced strings.
BRACKETS = "()[]"
BRACKET_LABELS = ("unbalanced", "balanced")


SyntheticTask = Literal["copy", "reverse", "sort", "addition", "brackets"]
#: Default (min_len, max_len) of training inputs per task (addition: digits of the longer operand).
DEFAULT_LENGTHS: dict[str, tuple[int, int]] = {"copy": (1, 8), "reverse": (1, 8), "sort": (1, 8), "addition": (1, 4),
                                               "brackets": (2, 16)}


@dataclass
class SyntheticSplits:
    """Sizes and lengths of a synthetic task's splits (null lengths: the task's defaults).

    Args:
        train_size: Training examples.
        val_size: Validation examples (same lengths as training).
        test_size: Test examples, all longer than any training input (length generalisation).
        min_len: Shortest input (addition: digits of the longer operand; brackets: characters).
        max_len: Longest training / validation input.
        test_min_len: Shortest test input; null = ``max_len + 1``.
        test_max_len: Longest test input; null = ``max_len + max(2, max_len // 2)``.
    """

    train_size: int = 4000
    val_size: int = 200
    test_size: int = 200
    min_len: int | None = None
    max_len: int | None = None
    test_min_len: int | None = None
    test_max_len: int | None = None

    def sizes(self) -> dict[str, int]:
        for name in ("train_size", "val_size", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"synthetic.{name}={getattr(self, name)} must be >= 1")
        return {"train": self.train_size, "validation": self.val_size, "test": self.test_size}

    def lengths(self, task: str) -> Lengths:
        """The input lengths of each split for ``task``, defaults filled in."""
        low, high = DEFAULT_LENGTHS[task]
        min_len = low if self.min_len is None else self.min_len
        max_len = high if self.max_len is None else self.max_len
        test_min = self.test_min_len or max_len + 1
        return Lengths(min_len, max_len, test_min, self.test_max_len or max(test_min, max_len + max(2, max_len // 2)))


def check_synthetic(builtin: str, synthetic: SyntheticSplits | dict | None, data: Any) -> SyntheticSplits | None:
    """The splits of a synthetic ``builtin`` task (None for another built-in task), checked in one
    line now; the data module ``data`` then trains a character tokenizer without span sentinels."""
    if builtin not in DEFAULT_LENGTHS:
        if synthetic is not None:
            raise ValueError(f"synthetic sizes apply to the tasks {list(DEFAULT_LENGTHS)}, not builtin={builtin!r}")
        return None
    synthetic = SyntheticSplits(**synthetic) if isinstance(synthetic, dict) else synthetic or SyntheticSplits()
    try:
        synthetic.sizes(), synthetic.lengths(builtin)
    except ValueError as error:
        raise ValueError(f"builtin={builtin!r}: {error}") from None
    if data.tokenizer_path is None and data.tokenizer_kind != "char":
        raise ValueError(f"builtin={builtin!r} is a task of single characters: set tokenizer: char")
    data.num_sentinels = 0
    return synthetic


@dataclass(frozen=True)
class Lengths:
    """Input lengths per split: train and validation share ``[min_len, max_len]``; test is longer."""

    min_len: int
    max_len: int
    test_min_len: int
    test_max_len: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(
                f"lengths need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}"
            )
        if not self.max_len < self.test_min_len <= self.test_max_len:
            raise ValueError(
                f"the test split must be longer than training: need max_len={self.max_len} < test_min_len="
                f"{self.test_min_len} <= test_max_len={self.test_max_len}"
            )


def _copy(rng: random.Random, n: int, alphabet: str) -> tuple[str, str]:
    source = "".join(rng.choice(alphabet) for _ in range(n))
    return source, source


def _reverse(rng: random.Random, n: int, alphabet: str) -> tuple[str, str]:
    source = "".join(rng.choice(alphabet) for _ in range(n))
    return source, source[::-1]


def _sort(rng: random.Random, n: int, alphabet: str) -> tuple[str, str]:
    source = "".join(rng.choice(alphabet) for _ in range(n))
    return source, "".join(sorted(source))


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def _addition(rng: random.Random, n: int, alphabet: str) -> tuple[str, str]:
    """``n`` is the longer operand's digit count; the other has 1..n digits."""
    a, b = _number(rng, n), _number(rng, rng.randint(1, n))
    if rng.random() < 0.5:
        a, b = b, a
    return f"{a}+{b}", str(a + b)


#: name -> (generator(rng, length, alphabet) -> (source, target), alphabet, target length == source length)
SEQ2SEQ_RULES: dict[str, tuple[Callable[[random.Random, int, str], tuple[str, str]], str, bool]] = {
    "copy": (_copy, LETTERS, True),
    "reverse": (_reverse, LETTERS, True),
    "sort": (_sort, LETTERS, True),
    "addition": (_addition, DIGITS + "+", False),
}


def is_balanced(text: str) -> bool:
    """Whether every bracket in ``text`` closes the most recent open one of its kind."""
    pairs = {")": "(", "]": "["}
    stack: list[str] = []
    for char in text:
        if char in "([":
            stack.append(char)
        elif not stack or stack.pop() != pairs[char]:
            return False
    return not stack


def _balanced(rng: random.Random, n: int) -> str:
    """A random balanced string of ``n`` (even) brackets: with open brackets on the stack, close
    one with probability ½ (always, once the remaining positions are just enough to close them)."""
    out: list[str] = []
    stack: list[str] = []
    for position in range(n):
        if stack and (len(stack) == n - position or rng.random() < 0.5):
            out.append(")" if stack.pop() == "(" else "]")
        else:
            stack.append(rng.choice("(["))
            out.append(stack[-1])
    return "".join(out)


def _unbalanced(rng: random.Random, n: int) -> str:
    """A near miss: a balanced string with two brackets swapped or one bracket's kind changed, so
    the counts usually still match and only the structure is wrong."""
    while True:
        chars = list(_balanced(rng, n))
        i, j = rng.sample(range(n), 2)
        if rng.random() < 0.5:
            chars[i], chars[j] = chars[j], chars[i]
        else:
            chars[i] = {"(": "[", "[": "(", ")": "]", "]": ")"}[chars[i]]
        text = "".join(chars)
        if not is_balanced(text):
            return text


class _Drawer:
    """Draws distinct examples; one ``seen`` set across splits keeps the splits disjoint."""

    def __init__(self, task: str, seed: int) -> None:
        self.rng = random.Random(f"zoo-synthetic:{task}:{seed}")
        self.seen: set[str] = set()
        self.task = task

    def draw(self, count: int, low: int, high: int, make: Callable[[random.Random, int, int], tuple[str, Any]]):
        out: list[tuple[str, Any]] = []
        attempts = 0
        while len(out) < count:
            attempts += 1
            if attempts > 100 * count + 1000:
                raise ValueError(
                    f"task {self.task!r}: cannot draw {count} distinct examples with lengths {low}..{high}; "
                    f"widen the lengths or lower the split sizes"
                )
            key, value = make(self.rng, self.rng.randint(low, high), len(out))
            if key not in self.seen:
                self.seen.add(key)
                out.append((key, value))
        return out


def seq2seq_splits(
    rule: str, seed: int, sizes: dict[str, int], lengths: Lengths
) -> dict[str, list[tuple[str, str]]]:
    """``(source, target)`` pairs of a synthetic rule for the train, validation and test splits.

    Args:
        rule: One of ``SEQ2SEQ_RULES`` (copy, reverse, sort, addition).
        seed: Picks the examples; the same seed gives the same splits.
        sizes: Examples per split, keys ``train``, ``validation``, ``test``.
        lengths: Source lengths (digits of the longer operand for addition).
    """
    generate, alphabet, _ = SEQ2SEQ_RULES[rule]
    drawer = _Drawer(rule, seed)

    def make(rng: random.Random, n: int, index: int) -> tuple[str, str]:
        return generate(rng, n, alphabet)

    # Test first: its lengths never collide with training anyway, and drawing it first keeps the
    # test set of a seed fixed when the training size changes.
    test = drawer.draw(sizes["test"], lengths.test_min_len, lengths.test_max_len, make)
    validation = drawer.draw(sizes["validation"], lengths.min_len, lengths.max_len, make)
    train = drawer.draw(sizes["train"], lengths.min_len, lengths.max_len, make)
    return {"train": train, "validation": validation, "test": test}


def bracket_splits(seed: int, sizes: dict[str, int], lengths: Lengths) -> dict[str, list[tuple[str, int]]]:
    """``(text, label)`` pairs of the balanced-brackets language, half of each split balanced
    (label 1). Lengths are rounded to even numbers (odd strings are never balanced)."""
    drawer = _Drawer("brackets", seed)

    def make(rng: random.Random, n: int, index: int) -> tuple[str, int]:
        n = max(2, n + n % 2)
        balanced = index % 2 == 1
        return (_balanced(rng, n) if balanced else _unbalanced(rng, n)), int(balanced)

    splits = {
        "test": drawer.draw(sizes["test"], lengths.test_min_len, lengths.test_max_len, make),
        "validation": drawer.draw(sizes["validation"], lengths.min_len, lengths.max_len, make),
        "train": drawer.draw(sizes["train"], lengths.min_len, lengths.max_len, make),
    }
    return {split: splits[split] for split in ("train", "validation", "test")}
