"""Local lm-eval tasks built from data the zoo ships, so evaluation never downloads anything.

- ``zoo_cloze`` (multiple_choice; acc, chance 0.25): a held-out sentence without its last word,
  and 4 endings, 3 of them the last words of other sentences.
- ``zoo_next_sentence`` (multiple_choice; acc, chance 0.25): a held-out sentence, and 4 candidate
  next sentences, 3 of them from other documents.
- ``zoo_last_word`` (loglikelihood; perplexity, acc = the word is the greedy continuation):
  LAMBADA's form, up to two sentences of context and the last word of the third.
- ``zoo_paragraphs`` (loglikelihood_rolling; word/byte perplexity, bits per byte): held-out paragraphs.
- ``zoo_copy``, ``zoo_reverse``, ``zoo_sort``, ``zoo_addition`` (generate_until; exact_match,
  chance ~0): ``zoo.data.synthetic``'s strings of 3-8 symbols, asked ``abc ->`` and answered
  `` cba``, with 64 examples to draw few-shot prompts from.

Tags: ``zoo_local`` (all), ``zoo_scoring`` (the four above that score text: every family answers
them), ``zoo_generation`` (the four that generate: decoders and encoder-decoders).

Text items come from the built-in corpus's documents that ``zoo fit``'s split holds out for
validation with its defaults (``val_fraction=0.05``, ``seed=1234``; every config in ``configs/``
uses them), so models trained with those configs never saw them; few-shot examples come from the
training documents. The items are committed (``zoo/eval/data/*.jsonl``, built by ``python -m
zoo.eval.tasks build`` from CPython 3.11's corpus; ``manifest.json`` records which), so every
machine scores the same items whatever its Python version.

lm-eval reads tasks from YAML files whose ``data_files`` are paths on this machine:
``task_directory()`` writes them (into the zoo cache) pointing at the package's data, and
``python -m zoo.eval.tasks path`` prints the directory for ``lm_eval --include_path``.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("data")
#: The split of the built-in corpus the text items are held out from (TextDataModule's defaults).
HELD_OUT = {"val_fraction": 0.05, "seed": 1234}
#: Bumped when a task's YAML or data changes, so cached task directories are rewritten.
VERSION = 1
OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")


@dataclass(frozen=True)
class LocalTask:
    """One local task: its lm-eval config (without the data paths) and what chance scores.

    Attributes:
        name: The lm-eval task name.
        output_type: lm-eval's request type (``multiple_choice``, ``loglikelihood``,
            ``loglikelihood_rolling``, ``generate_until``).
        splits: Data file stem per lm-eval split role (``test`` and, for few-shot, ``train``).
        config: The rest of the YAML.
        chance: Metric -> what guessing scores (absent: no meaningful chance level).
        summary: One line for tables and ``--help``.
    """

    name: str
    output_type: str
    splits: dict[str, str]
    config: dict[str, Any]
    chance: dict[str, float] = field(default_factory=dict)
    summary: str = ""

    def yaml_config(self, datasets_cache: Path, data: Path = DATA) -> dict[str, Any]:
        """The YAML lm-eval reads: ``data_files`` in ``data``, Arrow copies in ``datasets_cache``."""
        files = {role: str(data / f"{stem}.jsonl") for role, stem in self.splits.items()}
        config: dict[str, Any] = {
            "task": self.name, "tag": ["zoo_local", f"zoo_{'generation' if self.generates else 'scoring'}"],
            "dataset_path": "json", "dataset_kwargs": {"data_files": files, "cache_dir": str(datasets_cache)},
            "output_type": self.output_type, "test_split": "test",
        }
        if "train" in self.splits:
            config |= {"training_split": "train", "fewshot_split": "train"}
        return config | self.config | {"metadata": {"version": float(VERSION)}}

    @property
    def generates(self) -> bool:
        return self.output_type == "generate_until"


_MC_METRICS = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
               {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]
_SYNTHETIC = {
    "copy": "Copy the letters.",
    "reverse": "Reverse the letters.",
    "sort": "Sort the letters.",
    "addition": "Add the numbers.",
}


def _synthetic_task(rule: str, description: str) -> LocalTask:
    return LocalTask(
        name=f"zoo_{rule}", output_type="generate_until",
        splits={"test": f"zoo_{rule}.test", "train": f"zoo_{rule}.train"},
        config={
            "description": f"{description}\n\n",
            "doc_to_text": "{{source}} ->", "doc_to_target": "{{target}}", "target_delimiter": " ",
            "fewshot_delimiter": "\n",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 24, "do_sample": False},
            "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"},
                                                         {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        },
        chance={"exact_match": 0.0},
        summary=f"{description} ({rule} of zoo.data.synthetic, 3-8 symbols)",
    )


TASKS: dict[str, LocalTask] = {
    task.name: task for task in [
        LocalTask(
            name="zoo_cloze", output_type="multiple_choice",
            splits={"test": "zoo_cloze.test", "train": "zoo_cloze.train"},
            config={"doc_to_text": "{{context}}", "doc_to_choice": "{{choices}}", "doc_to_target": "{{label}}",
                    "target_delimiter": " ", "metric_list": _MC_METRICS},
            chance={"acc": 0.25, "acc_norm": 0.25},
            summary="the last word of a held-out sentence among 4",
        ),
        LocalTask(
            name="zoo_next_sentence", output_type="multiple_choice",
            splits={"test": "zoo_next_sentence.test", "train": "zoo_next_sentence.train"},
            config={"doc_to_text": "{{context}}", "doc_to_choice": "{{choices}}", "doc_to_target": "{{label}}",
                    "target_delimiter": " ", "metric_list": _MC_METRICS},
            chance={"acc": 0.25, "acc_norm": 0.25},
            summary="the sentence that follows a held-out sentence, among 4",
        ),
        LocalTask(
            name="zoo_last_word", output_type="loglikelihood",
            splits={"test": "zoo_last_word.test", "train": "zoo_last_word.train"},
            config={"doc_to_text": "{{context}}", "doc_to_target": "{{target}}", "target_delimiter": " ",
                    "metric_list": [{"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
                                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True}]},
            summary="LAMBADA's form: the last word of a held-out passage, greedy",
        ),
        LocalTask(
            name="zoo_paragraphs", output_type="loglikelihood_rolling",
            splits={"test": "zoo_paragraphs.test"},
            config={"doc_to_text": "", "doc_to_target": "{{text}}",
                    "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"},
                                    {"metric": "bits_per_byte"}]},
            summary="held-out paragraphs, rolling log-likelihood",
        ),
        *(_synthetic_task(rule, description) for rule, description in _SYNTHETIC.items()),
    ]
}


# ---------------------------------------------------------------------------------------------
# The task directory lm-eval reads


def task_directory(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A directory of YAML files, one per local task, pointing at the data on this machine; written
    (atomically, only when its contents change) under the zoo cache."""
    import yaml

    from zoo.data.datamodule import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    directory = root / "eval_tasks" / f"v{VERSION}"
    directory.mkdir(parents=True, exist_ok=True)
    for task in TASKS.values():
        text = yaml.safe_dump(task.yaml_config(root / "datasets"), sort_keys=False, allow_unicode=True)
        path = directory / f"{task.name}.yaml"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    return directory


def is_local(name: str) -> bool:
    """Whether ``name`` is a local task or one of their tags (answered without lm-eval's index)."""
    return name in TASKS or name in {"zoo_local", "zoo_scoring", "zoo_generation"}


def expand(names: Iterable[str]) -> list[str]:
    """Local task names with tags expanded (other names pass through)."""
    out: list[str] = []
    for name in names:
        if name in TASKS or not is_local(name):
            out.append(name)
        else:
            out += [t.name for t in TASKS.values() if name == "zoo_local" or (name == "zoo_generation") == t.generates]
    return list(dict.fromkeys(out))


def close_matches(name: str, known: Sequence[str]) -> str:
    """`` (did you mean a, b?)`` for an unknown task name, or ``""``."""
    matches = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


# ---------------------------------------------------------------------------------------------
# Building the data (python -m zoo.eval.tasks build): run once, the files are committed


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_LAST_WORD = re.compile(r"[A-Za-z]{3,}\.")
_CODE_START = (">>>", "...", "$", "*", "=", "-", "+", "|", "#")


def paragraphs(doc: str) -> Iterator[str]:
    """Prose paragraphs of a document, whitespace collapsed: no code blocks, tables or headings."""
    for block in re.split(r"\n\s*\n", doc):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or lines[0].lstrip().startswith(_CODE_START) or all(line.startswith("   ") for line in lines):
            continue
        yield " ".join(block.split())


def sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph that end in a word of three or more letters and a full stop."""
    out = []
    for sentence in _SENTENCE_END.split(paragraph):
        words = sentence.split()
        if 6 <= len(words) <= 60 and _LAST_WORD.fullmatch(words[-1]) and sentence[:1].isupper():
            out.append(sentence)
    return out


def held_out_documents() -> tuple[list[str], list[str]]:
    """``(train, validation)`` documents of the built-in corpus as ``zoo fit`` splits them by default."""
    from zoo.data.corpus import builtin_corpus
    from zoo.data.splits import split_documents

    return split_documents(builtin_corpus(), HELD_OUT["val_fraction"], HELD_OUT["seed"])


def _cloze_items(docs: list[str], endings: list[str], rng: random.Random, limit: int | None, seen: str) -> list[dict]:
    """Distractors are drawn from ``endings`` with repetition, so with the frequencies of true
    endings: a model that knows only which words are common (or prefers fewer tokens) gets chance."""
    items = []
    for doc in docs:
        for paragraph in paragraphs(doc):
            for sentence in sentences(paragraph):
                if sentence in seen:
                    continue
                *words, last = sentence.split()
                others: list[str] = []
                while len(others) < 3:
                    pick = rng.choice(endings)
                    if pick.lower() != last.lower() and pick not in others:
                        others.append(pick)
                choices = [last, *others]
                rng.shuffle(choices)
                items.append({"context": " ".join(words), "choices": choices, "label": choices.index(last)})
    return _sample(items, rng, limit)


def _last_word_items(docs: list[str], rng: random.Random, limit: int | None, seen: str) -> list[dict]:
    items = []
    for doc in docs:
        for paragraph in paragraphs(doc):
            found = _SENTENCE_END.split(paragraph)
            for i, sentence in enumerate(found):
                if sentence not in sentences(sentence) or sentence in seen:
                    continue
                *words, last = sentence.split()
                before = " ".join(found[max(0, i - 2) : i])
                context = f"{before} {' '.join(words)}".strip()
                items.append({"context": context, "target": last[:-1]})
    return _sample(items, rng, limit)


def _next_sentence_items(docs: list[str], rng: random.Random, limit: int | None, seen: str) -> list[dict]:
    pairs, pool = [], []
    for d, doc in enumerate(docs):
        for paragraph in paragraphs(doc):
            found = _SENTENCE_END.split(paragraph)
            fits = [6 <= len(s.split()) <= 25 for s in found]
            pool += [(d, s) for s, ok in zip(found, fits, strict=True) if ok]
            pairs += [(d, a, b) for a, b, ok_a, ok_b in zip(found, found[1:], fits, fits[1:], strict=False)
                      if ok_a and ok_b and f"{a} {b}" not in seen]
    items = []
    for d, first, second in pairs:
        others = [s for e, s in pool if e != d]
        choices = [second, *rng.sample(others, 3)]
        rng.shuffle(choices)
        items.append({"context": first, "choices": choices, "label": choices.index(second)})
    return _sample(items, rng, limit)


def _paragraph_items(docs: list[str], rng: random.Random, limit: int | None, seen: str) -> list[dict]:
    items = [{"text": p} for doc in docs for p in paragraphs(doc)
             if 200 <= len(p) <= 800 and sentences(p) and p not in seen]
    return _sample(items, rng, limit)


def _sample(items: list[dict], rng: random.Random, limit: int | None) -> list[dict]:
    return items if limit is None or len(items) <= limit else rng.sample(items, limit)


def build_data(directory: Path = DATA) -> dict[str, int]:
    """Write every local task's JSONL files to ``directory`` and a ``manifest.json``; returns
    the item count per file."""
    from zoo.data.corpus import builtin_corpus, documents_fingerprint
    from zoo.data.synthetic import Lengths, seq2seq_splits

    train, held_out = held_out_documents()
    endings = [s.split()[-1] for doc in train for p in paragraphs(doc) for s in sentences(p)]
    # The corpus repeats itself (a reference topic and a docstring can share sentences): a held-out
    # item whose text also occurs in a training document is dropped, so no test item was trained on.
    train_text = "\n".join(" ".join(doc.split()) for doc in train)
    files: dict[str, list[dict]] = {}
    for role, docs, limit, seen in (("test", held_out, None, train_text), ("train", train, 64, "")):
        files[f"zoo_cloze.{role}"] = _cloze_items(docs, endings, random.Random(f"zoo_cloze.{role}"), limit, seen)
        files[f"zoo_last_word.{role}"] = _last_word_items(docs, random.Random(f"zoo_last_word.{role}"), limit, seen)
        files[f"zoo_next_sentence.{role}"] = _next_sentence_items(docs, random.Random(f"zoo_next.{role}"), limit,
                                                                  seen)
    files["zoo_paragraphs.test"] = _paragraph_items(held_out, random.Random("zoo_paragraphs"), 100, train_text)
    lengths = Lengths(min_len=3, max_len=8, test_min_len=9, test_max_len=12)
    for rule in _SYNTHETIC:
        split = seq2seq_splits(rule, seed=0, sizes={"train": 64, "validation": 200, "test": 0}, lengths=lengths)
        files[f"zoo_{rule}.test"] = [{"source": s, "target": t} for s, t in split["validation"]]
        files[f"zoo_{rule}.train"] = [{"source": s, "target": t} for s, t in split["train"]]
    directory.mkdir(parents=True, exist_ok=True)
    for stem, items in files.items():
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (directory / f"{stem}.jsonl").write_text(text, encoding="utf-8")
    counts = {stem: len(items) for stem, items in files.items()}
    manifest = {"version": VERSION, "python": sys.version.split()[0],
                "corpus_fingerprint": documents_fingerprint(builtin_corpus()), "held_out": HELD_OUT,
                "items": counts}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.eval.tasks path`` prints the task directory; ``build`` rebuilds the data."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        for stem, count in build_data().items():
            print(f"{stem}: {count} items")
        return 0
    if argv[:1] in (["path"], []):
        print(task_directory())
        return 0
    print("usage: python -m zoo.eval.tasks [path | build]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
