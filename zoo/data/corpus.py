"""Where text comes from: the built-in offline corpus, user files, and the train/validation split.

The built-in corpus exists on any CPython install (the reference-manual topics that back `help()`
plus standard-library docstrings), so every config runs without a download. `resolve_data_files`
checks every user file first, so a typo or a broken file fails with one line before a tokenizer is
trained or a model is built. Then documents stream: text files through `datasets.load_dataset`, JSON
(Lines), CSV and parquet records through `zoo.data.records`, which checks every record as it reads
it (a bad one is refused in one line naming file, line and field, or skipped and counted).
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from zoo.data.records import BadRecords, RecordTally, check_bad_records, field_problem, first_json_record, read_records

DataFormat = Literal["text", "json", "csv", "parquet"]
DATA_FORMATS: tuple[str, ...] = ("text", "json", "csv", "parquet")
DataFiles = str | list[str] | dict[str, str | list[str]]
#: What one document of a .txt file is (the `datasets` text builder's names): a line, a
#: paragraph (text between blank lines) or the whole file.
SampleBy = Literal["line", "paragraph", "document"]
SAMPLE_BY: tuple[str, ...] = ("line", "paragraph", "document")

#: Splits a user may name in `data_files`; a missing validation split is cut from train.
SPLITS: tuple[str, ...] = ("train", "validation")

#: How a file extension maps to a `datasets` builder when `data_format` is not given.
EXTENSION_FORMATS: dict[str, DataFormat] = {
    ".txt": "text",
    ".text": "text",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}


@lru_cache(maxsize=1)
def _builtin_corpus() -> tuple[str, ...]:
    # Collect in a fresh interpreter: this process's imports may patch the stdlib (torch replaces
    # `inspect.getfile`), which would make the corpus, and every tokenizer trained on it, depend on
    # what happened to be imported first. -I -S: no environment, user site or .pth hooks either.
    script = Path(__file__).with_name("_stdlib_docs.py")
    result = subprocess.run(
        [sys.executable, "-I", "-S", os.fspath(script)], capture_output=True, check=False, timeout=300
    )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"building the built-in corpus failed: {reason[0]}")
    return tuple(json.loads(result.stdout))


def builtin_corpus() -> list[str]:
    """Documents that ship with every CPython: reference-manual topics and stdlib docstrings.

    About 1.2 MB of English prose with code, in a fixed order (topics sorted by name, then modules
    and their members sorted by name). It is collected in a fresh isolated interpreter (about 0.3 s,
    once per process), so it is identical on every call of one Python install whatever this
    process has imported.

    Returns:
        A new list of non-empty, distinct documents.
    """
    return list(_builtin_corpus())


def documents_fingerprint(docs: Iterable[str]) -> str:
    """A stable hex digest of a sequence of documents (order and boundaries included)."""
    digest = hashlib.sha256()
    for doc in docs:
        data = doc.encode("utf-8", errors="surrogatepass")
        # Length-prefix each document so ["ab", "c"] and ["a", "bc"] hash differently.
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# User files


def _normalise_data_files(data_files: DataFiles) -> dict[str, list[str]]:
    if isinstance(data_files, str):
        return {"train": [data_files]}
    if isinstance(data_files, Mapping):
        unknown = sorted(set(data_files) - set(SPLITS))
        if unknown:
            raise ValueError(f"data_files has unknown split(s) {unknown}; valid splits are {list(SPLITS)}")
        if "train" not in data_files:
            raise ValueError(f"data_files needs a 'train' split, got splits {sorted(data_files)}")
        return {split: [files] if isinstance(files, str) else list(files) for split, files in data_files.items()}
    if isinstance(data_files, Sequence):
        return {"train": list(data_files)}
    raise ValueError(
        f"data_files must be a path, a list of paths or a dict split -> paths, got {type(data_files).__name__}"
    )


def _expand(path: str) -> list[str]:
    """A path, the sorted matches of a glob pattern, or the files of a directory (recursively,
    sorted, hidden ones skipped); missing files fail here."""
    if any(char in path for char in "*?[") and not os.path.exists(path):
        matches = sorted(glob.glob(os.path.expanduser(path), recursive=True))
        matches = [match for match in matches if os.path.isfile(match)]
        if not matches:
            raise FileNotFoundError(f"data file pattern {path!r} matches no files")
        return matches
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        found = []
        for root, dirs, names in os.walk(expanded):
            dirs[:] = [name for name in dirs if not name.startswith(".")]  # no .git, .cache, ...
            found += [os.path.join(root, name) for name in names if not name.startswith(".")]
        found.sort()
        if not found:
            raise FileNotFoundError(f"data directory {path!r} holds no files")
        return found
    if not os.path.isfile(expanded):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    return [expanded]


def _infer_format(path: str) -> DataFormat:
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSION_FORMATS:
        raise ValueError(
            f"data file {path!r} has an unknown extension {suffix or '(none)'!r}; use one of "
            f"{sorted(EXTENSION_FORMATS)} or pass data_format as one of {sorted(DATA_FORMATS)}"
        )
    return EXTENSION_FORMATS[suffix]


def _check_utf8_text(path: str, chunk_size: int = 1 << 20) -> None:
    """Fail unless the file decodes as UTF-8 and holds something besides whitespace."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    has_text = False
    offset = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"data file {path!r} is not valid UTF-8 (byte {offset + error.start}); "
                    f"re-encode it as UTF-8, e.g. iconv -t UTF-8"
                ) from None
            has_text = has_text or bool(text.strip())
            if not chunk:
                break
            offset += len(chunk)
    if not has_text:
        raise ValueError(f"data file {path!r} is empty (no non-whitespace text)")


def _check_json(path: str, text_field: str) -> None:
    record = first_json_record(path)
    if not isinstance(record, dict):
        raise ValueError(
            f"data file {path!r} must hold JSON objects with a {text_field!r} field, found {type(record).__name__}"
        )
    if text_field not in record:
        raise ValueError(
            f"data file {path!r} has no text_field {text_field!r}; its fields are "
            f"{sorted(record)[:20]} (set --data.text_field)"
        )


def _check_csv(path: str, text_field: str) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    if text_field not in header:
        raise ValueError(
            f"data file {path!r} has no text_field {text_field!r}; its header is {header[:20]} (set --data.text_field)"
        )


def _check_parquet(path: str, text_field: str) -> None:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as error:
        raise ValueError(f"data file {path!r} is not a readable parquet file ({error})") from None
    if text_field not in schema.names:
        raise ValueError(
            f"data file {path!r} has no text_field {text_field!r}; its columns are "
            f"{schema.names[:20]} (set --data.text_field)"
        )
    if pq.ParquetFile(path).metadata.num_rows == 0:
        raise ValueError(f"data file {path!r} is empty (no rows)")


def resolve_data_files(
    data_files: DataFiles,
    data_format: DataFormat | None = None,
    text_field: str = "text",
) -> tuple[dict[str, list[str]], DataFormat]:
    """Normalise `data_files` and check every file, so bad input fails before any work.

    Args:
        data_files: A path or glob, a list of them, or a dict from split ("train", "validation") to
            one or several paths.
        data_format: "text", "json", "csv" or "parquet"; inferred from the extensions when None.
        text_field: Field / column holding the text in JSON, CSV and parquet files.

    Returns:
        `(files, data_format)`: the files per split with globs expanded, and the format.

    Raises:
        FileNotFoundError: A file is missing or a pattern matches nothing.
        ValueError: Unknown split, unknown or mixed extensions, empty or non-UTF-8 file, or a JSON,
            CSV or parquet file without `text_field`. The message names the file.
    """
    if data_format is not None and data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {sorted(DATA_FORMATS)} or None, got {data_format!r}")
    files = {
        split: [path for pattern in paths for path in _expand(pattern)]
        for split, paths in _normalise_data_files(data_files).items()
    }
    for split, paths in files.items():
        if not paths:
            raise ValueError(f"data_files split {split!r} lists no files")
    every = [path for paths in files.values() for path in paths]
    if data_format is None:
        formats = {path: _infer_format(path) for path in every}
        if len(set(formats.values())) > 1:
            examples = {fmt: path for path, fmt in formats.items()}
            named = ", ".join(f"{fmt} ({examples[fmt]})" for fmt in sorted(examples))
            raise ValueError(f"data_files mix formats {named}; use one format or pass data_format")
        data_format = formats[every[0]]
    for path in every:
        if not os.access(path, os.R_OK):
            raise PermissionError(f"data file {path!r} is not readable (permission denied); fix or leave it out")
        if os.path.getsize(path) == 0:
            raise ValueError(f"data file {path!r} is empty (0 bytes)")
        if data_format == "parquet":
            _check_parquet(path, text_field)
            continue
        try:
            _check_utf8_text(path)  # JSON is UTF-8 by definition, so this serves both formats
        except OSError as error:  # unreadable midway (I/O error, permissions root ignores in access)
            reason = error.strerror or error
            raise OSError(f"data file {path!r} cannot be read ({reason}); fix or leave it out") from None
        if data_format == "json":
            _check_json(path, text_field)
        elif data_format == "csv":
            _check_csv(path, text_field)
    return files, data_format


def _check_hub_reachable(dataset_name: str) -> None:
    """Fail in milliseconds, not after the Hub client's half-minute of retries, when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE"):
        return  # `datasets` then answers from its cache or fails at once by itself
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a proxy resolves names for us; a local lookup proves nothing
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise ConnectionError(
            f"cannot load dataset_name={dataset_name!r}: the Hugging Face Hub ({host}) is unreachable "
            f"from here; offline runs need local files via --data.data_files"
        ) from None


def load_texts(
    data_files: DataFiles | None = None,
    data_format: DataFormat | None = None,
    text_field: str = "text",
    dataset_name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    check_files: bool = True,
    bad_records: BadRecords = "error",
) -> dict[str, list[str]]:
    """Read user documents per split into lists (for small corpora; training streams, see `stream_splits`).

    Text files give one document per non-empty line; JSON (Lines), CSV and parquet give one document
    per record's `text_field`, every record checked (see `zoo.data.records.read_records`).

    Args:
        data_files: Local files, see `resolve_data_files`.
        data_format: "text", "json", "csv" or "parquet"; inferred from the extensions when None.
        text_field: Field / column holding the text (ignored for text files).
        dataset_name: A Hugging Face Hub dataset instead of files; needs the network or a warm
            `datasets` cache.
        cache_dir: Where `datasets` keeps its Arrow files.
        check_files: Run `resolve_data_files` first. Pass False only with its output (`files`
            and `data_format`), which spares reading large files twice.
        bad_records: "error" refuses a record without a string `text_field` in one line; "skip"
            leaves it out and warns with the count.

    Returns:
        A dict with "train" and, when the data has one, "validation".

    Raises:
        ValueError: Bad files (see `resolve_data_files`), a bad record, no documents, or neither
            source given.
        ConnectionError: `dataset_name` cannot be loaded (e.g. offline).
    """
    if dataset_name is None and data_files is None:
        raise ValueError("load_texts needs data_files or dataset_name")
    if data_files is not None:
        if check_files:
            data_files, data_format = resolve_data_files(data_files, data_format, text_field)
        elif data_format is None:
            raise ValueError("load_texts(check_files=False) needs the data_format from resolve_data_files")
        data_files = _normalise_data_files(data_files)
    sources = stream_splits(data_files, data_format, text_field, dataset_name=dataset_name, cache_dir=cache_dir,
                            bad_records=bad_records)
    texts = {split: list(documents(warnings.warn)) for split, documents in sources.items()}
    for split, docs in texts.items():
        if not docs:
            raise ValueError(f"the {split!r} split holds no non-empty text")
    return texts


# ---------------------------------------------------------------------------------------------
# Streaming: documents one at a time, for corpora larger than memory

#: `stream_splits`' documents of one split: called with where to report skipped records (or None).
Documents = Callable[[Callable[[str], Any] | None], Iterator[str]]


def _text_lines(part: Any) -> Iterator[str]:
    """The documents of a `datasets` text split: its non-blank rows (a blank line is no document)."""
    for batch in part.iter(batch_size=1000):
        yield from (text for text in batch["text"] if text.strip())


def _hub_documents(part: Any, column: str, where: str, bad_records: BadRecords, report: Any) -> Iterator[str]:
    """The documents of a `datasets` split, each record's text checked (rows counted from 1)."""
    tally = RecordTally(where, bad_records, "row", source=where)
    row = 0
    try:
        for batch in part.iter(batch_size=1000):
            for text in batch[column]:
                row += 1
                tally.records += 1
                problem = field_problem(text, column, "document")
                if problem is not None:
                    tally.bad(row, problem)
                elif text.strip():
                    yield text
    finally:  # read to the end, or closed early (max_documents): say what was skipped
        if report is not None and (line := tally.summary()):
            report(line)


def _file_documents(paths: list[str], data_format: DataFormat, column: str, bad_records: BadRecords,
                    report: Any) -> Iterator[str]:
    for path in paths:
        records = read_records(path, data_format, {column: "document"}, bad_records=bad_records, report=report)
        try:
            for record in records:
                yield record[column]
        finally:  # closed early (max_documents): the file's reader reports what it skipped
            records.close()


def stream_splits(
    data_files: dict[str, list[str]] | None,
    data_format: DataFormat | None,
    text_field: str = "text",
    *,
    sample_by: SampleBy = "line",
    dataset_name: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    bad_records: BadRecords = "error",
) -> dict[str, Documents]:
    """Per split, a function that streams its documents (nothing listed in memory).

    Text files are read with `datasets.load_dataset("text", ..., streaming=True)` in chunks of 10 MB
    (a blank line is no document). JSON (Lines), CSV and parquet files are read file by file, a
    batch of records at a time, and every record is checked (`zoo.data.records.read_records`): a
    record whose `text_field` is missing, null or not a string is refused in one line naming the
    file, line and field, or with `bad_records="skip"` left out and counted. A hub dataset
    (`dataset_name`, also a local directory of parquet files) streams when `streaming` is True, else
    goes through `datasets`' Arrow cache first; its records are checked the same way (by row).

    Args:
        data_files: Checked files per split (`resolve_data_files`'s first output).
        data_format: Their format (`resolve_data_files`'s second output).
        text_field: Field / column with the text (JSON, CSV, parquet, hub datasets).
        sample_by: For text files: one document per "line", "paragraph" or whole "document" (file).
        dataset_name: A hub dataset name or local dataset directory instead of files.
        streaming: Stream `dataset_name` instead of preparing it.
        cache_dir: `datasets`' cache.
        bad_records: "error" or "skip" (see above).

    Returns:
        `{split: documents}` for "train" and, when the data has it, "validation"; `documents(report)`
        streams the split and, when it is read to its end, calls `report` (if not None) with one
        line per file that had records skipped.

    Raises:
        ValueError: An unknown `sample_by` or `bad_records`, no train split, or a missing text field.
        ConnectionError: `dataset_name` cannot be reached.
    """
    if sample_by not in SAMPLE_BY:
        raise ValueError(f"sample_by must be one of {list(SAMPLE_BY)}, got {sample_by!r}")
    check_bad_records(bad_records)
    cache = None if cache_dir is None else os.fspath(cache_dir)
    if dataset_name is None:
        if data_files is None or data_format is None:
            raise ValueError("stream_splits needs data_files with their format, or dataset_name")
        if data_format != "text":
            return {split: (lambda report=None, paths=paths: _file_documents(
                        paths, data_format, text_field, bad_records, report))
                    for split, paths in data_files.items() if split in SPLITS}
    import datasets

    if dataset_name is not None:
        _check_hub_reachable(dataset_name)
        try:
            loaded = datasets.load_dataset(dataset_name, cache_dir=cache, streaming=streaming)
        except Exception as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            message = f"could not load dataset_name={dataset_name!r} ({type(error).__name__}: {reason})"
            if isinstance(error, OSError):
                raise ConnectionError(f"{message}; offline runs need local files via --data.data_files") from None
            raise ValueError(message) from None
        column, origin = text_field, f"dataset {dataset_name!r}"
    else:
        loaded = datasets.load_dataset("text", data_files=data_files, cache_dir=cache, streaming=True,
                                       sample_by=sample_by)
        column, origin = "text", "data_files"
    if "train" not in loaded:
        raise ValueError(f"{origin} has no 'train' split, only {sorted(loaded)}")
    out: dict[str, Documents] = {}
    for split in SPLITS:
        if split not in loaded:
            continue
        part = loaded[split]
        names = part.column_names
        if names is not None and column not in names:
            raise ValueError(f"{origin} split {split!r} has no text_field {column!r}; its columns are {names}")
        if dataset_name is None:  # text files: every row is a line of text, nothing to check
            out[split] = lambda report=None, part=part: _text_lines(part)
        else:
            out[split] = (lambda report=None, part=part, where=f"{origin} split {split!r}":
                          _hub_documents(part, column, where, bad_records, report))
    return out


def files_key(files: Mapping[str, Sequence[str]]) -> list[list[Any]]:
    """A cheap identity of local files for cache keys: path, size and modification time of each."""
    return [[split, os.path.abspath(path), os.path.getsize(path), os.stat(path).st_mtime_ns]
            for split, paths in sorted(files.items()) for path in paths]
