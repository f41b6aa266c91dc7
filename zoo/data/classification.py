"""A labelled corpus built in: which part of the Python documentation a passage comes from.

``zoo compare``'s ``stdlib_docs`` task uses it today; it lives with the other corpora (not in
``zoo/compare/``) because it is data, which classification fine-tuning under ``zoo fit`` will read too.

Labels come from the built-in corpus itself (``zoo.data.corpus.builtin_corpus``): reference-manual
topics (``pydoc_data``) are ``language_reference``; a standard-library docstring takes the area of
its module, grouped after the chapters of the Python Library Reference. The qualified-name header
lines the corpus puts in front of docstrings are removed, so a passage never names its module.
"""

from __future__ import annotations

import re

from zoo.data.corpus import builtin_corpus
from zoo.data.splits import assign_splits, unit_hash

#: Library Reference areas -> the built-in corpus modules they cover (see ``_stdlib_docs.STDLIB_MODULES``).
STDLIB_AREAS: dict[str, tuple[str, ...]] = {
    "text_and_data": tuple(
        """string re difflib textwrap codecs struct datetime zoneinfo calendar collections collections.abc
        heapq bisect weakref types copy pprint reprlib enum graphlib numbers math decimal fractions random
        statistics itertools functools operator gettext locale""".split()
    ),
    "files_and_os": tuple(
        """pathlib fileinput filecmp tempfile glob fnmatch linecache shutil pickle shelve gzip lzma zipfile
        tarfile csv configparser plistlib os io logging logging.handlers platform argparse getopt optparse
        wave colorsys""".split()
    ),
    "internet_and_concurrency": tuple(
        """threading concurrent.futures subprocess sched queue asyncio socket selectors email.message
        email.utils json mailbox mimetypes base64 quopri html html.parser xml.etree.ElementTree
        xml.dom.minidom urllib.parse urllib.request http.client http.server http.cookies ftplib poplib
        imaplib smtplib uuid socketserver ipaddress hashlib hmac secrets""".split()
    ),
    "development_tools": tuple(
        """typing doctest unittest unittest.mock bdb pdb profile pstats timeit trace warnings dataclasses
        contextlib abc traceback inspect ast keyword tokenize dis pickletools cmd shlex""".split()
    ),
}
#: Class names in label-id order.
DOC_LABELS: tuple[str, ...] = ("language_reference", *sorted(STDLIB_AREAS))


def _reference_topics() -> set[str]:
    from pydoc_data.topics import topics

    return {text.strip() for text in topics.values() if text.strip()}


def document_origins() -> list[tuple[str, int, str]]:
    """``(text, label id, module)`` for every built-in document whose origin is known, header lines
    removed; ``module`` is ``""`` for reference-manual topics."""
    topics = _reference_topics()
    area_of = {module: area for area, modules in STDLIB_AREAS.items() for module in modules}
    by_length = sorted(area_of, key=len, reverse=True)  # "logging.handlers" before "logging"
    out = []
    for doc in builtin_corpus():
        if doc in topics:
            out.append((doc, DOC_LABELS.index("language_reference"), ""))
            continue
        first_line = doc.split("\n", 1)[0]
        module = next((m for m in by_length if first_line == m or first_line.startswith(m + ".")), None)
        if module is None:
            continue
        # Drop every line that is a dotted name under the module ("json.JSONDecoder.decode").
        header = re.compile(rf"^{re.escape(module)}(\.\w+)*$")
        text = "\n".join(line for line in doc.split("\n") if not header.match(line.strip())).strip()
        if text:
            out.append((text, DOC_LABELS.index(area_of[module]), module))
    return out


def labelled_documents() -> list[tuple[str, int]]:
    """``(text, label id)`` for every built-in document whose origin is known, header lines removed."""
    return [(text, label) for text, label, _ in document_origins()]


def passages(text: str, max_chars: int, min_chars: int) -> list[str]:
    """Cut ``text`` into consecutive passages of at most ``max_chars`` characters, breaking at the
    last line break (or else space) before the limit; passages shorter than ``min_chars`` are dropped."""
    out = []
    rest = text.strip()
    while rest:
        if len(rest) <= max_chars:
            piece, rest = rest, ""
        else:
            cut = max(rest.rfind("\n", 0, max_chars), rest.rfind(" ", 0, max_chars))
            cut = cut if cut > max_chars // 2 else max_chars
            piece, rest = rest[:cut], rest[cut:].strip()
        piece = piece.strip()
        if len(piece) >= min_chars:
            out.append(piece)
    return out


#: Splits of the built-in tasks: the documents are split, so a document's passages stay together.
DOC_SPLITS: tuple[str, ...] = ("train", "validation", "test")


def _document_splits(keys: list[str], seed: int, val_fraction: float, test_fraction: float) -> list[str]:
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                         "with a sum below 1")
    return assign_splits(keys, seed, {"validation": val_fraction, "test": test_fraction})


def python_docs_passages(
    seed: int,
    *,
    passage_chars: int = 160,
    min_chars: int = 48,
    train_per_class: int = 500,
    eval_per_class: int = 40,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> dict[str, list[tuple[str, int]]]:
    """The built-in classification task: ``(passage, label id)`` per split (``DOC_SPLITS``), labels
    indexing ``DOC_LABELS``. ``zoo fit``'s labelled data module and ``zoo compare``'s ``stdlib_docs``
    task both read it.

    Documents, not passages, are split (by a hash of their text and ``seed``), so a document's
    passages never straddle splits; a passage that occurs in documents of two splits (boilerplate) is
    kept only in the first. Each class is capped at ``train_per_class`` / ``eval_per_class`` passages
    (balancing the classes), chosen by hash, and the classes are mixed.

    Args:
        seed: Chooses the split and the sample.
        passage_chars: Longest passage in characters.
        min_chars: Shorter passages are dropped.
        train_per_class: At most this many training passages per class.
        eval_per_class: At most this many validation and test passages per class.
        val_fraction: Fraction of documents for validation.
        test_fraction: Fraction of documents for test.
    """
    docs = labelled_documents()
    where = _document_splits([text for text, _ in docs], seed, val_fraction, test_fraction)
    per_class: dict[str, dict[int, list[str]]] = {split: {} for split in DOC_SPLITS}
    for (text, label), split in zip(docs, where, strict=True):
        per_class[split].setdefault(label, []).extend(passages(text, passage_chars, min_chars))
    items: dict[str, list[tuple[str, int]]] = {}
    seen: set[str] = set()
    for split in DOC_SPLITS:
        cap = train_per_class if split == "train" else eval_per_class
        chosen = []
        for label, texts in sorted(per_class[split].items()):
            fresh = [t for t in dict.fromkeys(texts) if t not in seen]
            ranked = sorted(fresh, key=lambda t: unit_hash(t, seed))
            chosen += [(t, label) for t in ranked[:cap]]
        seen.update(t for texts in per_class[split].values() for t in texts)
        items[split] = sorted(chosen, key=lambda item: unit_hash(item[0], seed + 1))  # mix the classes
    return items


#: How the built-in instruction task names each part of the documentation in its answers.
AREA_ANSWERS: dict[str, str] = {
    "language_reference": "the language reference",
    "development_tools": "development tools",
    "files_and_os": "files and the operating system",
    "internet_and_concurrency": "internet and concurrency",
    "text_and_data": "text and data",
}
AREA_QUESTION = "Which part of the Python documentation is this from?"
MODULE_QUESTION = "Which module documents this?"


def python_docs_instructions(
    seed: int,
    *,
    passage_chars: int = 200,
    min_chars: int = 48,
    train_per_question: int = 1500,
    eval_per_question: int = 100,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> dict[str, list[tuple[str, str]]]:
    """The built-in instruction task: ``(prompt, response)`` per split (``DOC_SPLITS``), two questions
    about passages of the built-in corpus, answered in words:

    - ``AREA_QUESTION`` + passage -> the part of the documentation (``AREA_ANSWERS``);
    - ``MODULE_QUESTION`` + a standard-library passage -> its module (``json``, ``textwrap``, ...).

    Documents are split as in ``python_docs_passages``, so validation asks about unseen documents:
    answering needs what the passage says, not memory of it. Each question is capped per split.
    """
    origins = document_origins()
    where = _document_splits([text for text, _, _ in origins], seed, val_fraction, test_fraction)
    pairs: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()  # boilerplate passages shared by documents of two splits stay in the first
    for split in DOC_SPLITS:
        area, module = {}, {}
        for (text, label, name), doc_split in zip(origins, where, strict=True):
            if doc_split != split:
                continue
            for passage in passages(text, passage_chars, min_chars):
                if passage not in seen:
                    area[f"{AREA_QUESTION} {passage}"] = AREA_ANSWERS[DOC_LABELS[label]]
                    if name:
                        module[f"{MODULE_QUESTION} {passage}"] = name
        seen.update(prompt.removeprefix(f"{AREA_QUESTION} ") for prompt in area)
        cap = train_per_question if split == "train" else eval_per_question
        chosen = [pair for questions in (area, module)
                  for pair in sorted(questions.items(), key=lambda pair: unit_hash(pair[0], seed))[:cap]]
        pairs[split] = sorted(chosen, key=lambda pair: unit_hash(pair[0], seed + 1))  # mix the questions
    return pairs
