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


def labelled_documents() -> list[tuple[str, int]]:
    """``(text, label id)`` for every built-in document whose origin is known, header lines removed."""
    topics = _reference_topics()
    area_of = {module: area for area, modules in STDLIB_AREAS.items() for module in modules}
    by_length = sorted(area_of, key=len, reverse=True)  # "logging.handlers" before "logging"
    out = []
    for doc in builtin_corpus():
        if doc in topics:
            out.append((doc, DOC_LABELS.index("language_reference")))
            continue
        first_line = doc.split("\n", 1)[0]
        module = next((m for m in by_length if first_line == m or first_line.startswith(m + ".")), None)
        if module is None:
            continue
        # Drop every line that is a dotted name under the module ("json.JSONDecoder.decode").
        header = re.compile(rf"^{re.escape(module)}(\.\w+)*$")
        text = "\n".join(line for line in doc.split("\n") if not header.match(line.strip())).strip()
        if text:
            out.append((text, DOC_LABELS.index(area_of[module])))
    return out


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
