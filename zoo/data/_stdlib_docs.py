"""Print the built-in corpus as a JSON list: reference-manual topics, then stdlib docstrings.

Run as a script in a fresh `python -I -S` (see `zoo.data.corpus.builtin_corpus`), never imported
into a process whose other imports may have patched the stdlib. Uses the standard library only.
"""

import contextlib
import importlib
import inspect
import json
import sys
import warnings

# Modules whose import has no side effects and whose docstrings are prose. Fixed and sorted so the
# corpus (and hence every cached tokenizer keyed on it) is the same on every run of one Python.
# Modules missing from a given Python version are skipped, never an error.
STDLIB_MODULES: tuple[str, ...] = tuple(
    sorted(
        """
        abc argparse ast asyncio base64 bdb bisect calendar cmd codecs collections collections.abc
        colorsys concurrent.futures configparser contextlib copy csv dataclasses datetime decimal
        difflib dis doctest email.message email.utils enum filecmp fileinput fnmatch fractions
        ftplib functools getopt gettext glob graphlib gzip hashlib heapq hmac html html.parser
        http.client http.cookies http.server imaplib inspect io ipaddress itertools json keyword
        linecache locale logging logging.handlers lzma mailbox math mimetypes numbers operator
        optparse os pathlib pdb pickle pickletools platform plistlib poplib pprint profile pstats
        queue quopri random re reprlib sched secrets selectors shelve shlex shutil smtplib socket
        socketserver statistics string struct subprocess tarfile tempfile textwrap threading
        timeit tokenize trace traceback types typing unittest unittest.mock urllib.parse
        urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree zipfile
        zoneinfo
        """.split()
    )
)


def _clean(doc: object) -> str | None:
    """Dedented docstring text, or None when there is no prose."""
    if not isinstance(doc, str) or not doc.strip():
        return None
    return inspect.cleandoc(doc)


def _class_parts(qualname: str, cls: type) -> list[str]:
    """The class docstring followed by its own public methods' docstrings."""
    parts = [text] if (text := _clean(cls.__doc__)) else []
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) and (text := _clean(member.__doc__)):
            parts.append(f"{qualname}.{name}\n\n{text}")
    return parts


def module_documents(module_name: str) -> list[str]:
    """Docstrings of one module and of the public classes and functions it defines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices are noise in a corpus builder
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a stripped-down Python may lack some modules; the rest still work
            return []
    docs = [f"{module_name}\n\n{text}"] if (text := _clean(module.__doc__)) else []
    public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(set(public)):
        obj = getattr(module, name, None)
        # Only objects defined here: re-exports would repeat the same text under several modules.
        if getattr(obj, "__module__", None) != module_name:
            continue
        qualname = f"{module_name}.{name}"
        if inspect.isclass(obj):
            parts = _class_parts(qualname, obj)
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            parts = [text] if (text := _clean(obj.__doc__)) else []
        else:
            parts = []
        if parts:
            docs.append(f"{qualname}\n\n" + "\n\n".join(parts))
    return docs


def documents() -> list[str]:
    """Topics sorted by name, then modules (and their members) sorted by name; no duplicates."""
    from pydoc_data.topics import topics

    docs = [text.strip() for _, text in sorted(topics.items()) if text.strip()]
    for module_name in STDLIB_MODULES:
        docs.extend(module_documents(module_name))
    # Identical texts would otherwise land in both splits' statistics; keep the first occurrence.
    return list(dict.fromkeys(docs))


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # nothing an import prints can corrupt the JSON
        corpus = documents()
    # ASCII-only JSON: the parent decodes it without caring about this interpreter's locale.
    sys.stdout.write(json.dumps(corpus, ensure_ascii=True))
