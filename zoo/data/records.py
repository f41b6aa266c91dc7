"""Records from your files: JSON Lines, JSON, CSV or parquet rows with named fields, read one file at
a time and checked record by record as they stream.

Two users: the text corpus (``TextDataModule``: a ``text`` field per record) and the fine-tuning data
modules (``text``/``label`` for classification, ``prompt``/``response`` for instruction tuning).

Every file is checked before anything is read into memory (``resolve_record_files``): a missing file,
an unknown extension or a field the file does not have fails in one line that names the file and
lists the fields it has. Then every record is checked while it is read (``read_records``), in the one
pass that reads it: a record whose field is missing, null, empty or of the wrong type, a line that is
not JSON, a CSV row with too many fields — is refused in one line naming the file, the line (JSON Lines,
CSV), record (JSON array) or row (parquet) and the field; or, with ``bad_records="skip"`` (pandas
calls it ``on_bad_lines``), skipped and counted, and reported in one line per file at the end of the
pass. Nothing is dropped without a word.

JSON Lines are parsed line by line with ``json`` (about five times faster than ``datasets``' JSON
streaming here, and it knows the line), CSV in chunks with ``pandas.read_csv`` (the reader
``datasets`` uses, so labels are typed the same way), parquet in batches with ``pyarrow``.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

RecordFormat = Literal["json", "csv", "parquet"]
#: ``data_files`` as YAML gives it: a path or glob, a list of them, or split -> path(s).
RecordFiles = str | list[str] | dict[str, str | list[str]]
#: What happens to a bad record: ``error`` stops with one line naming it, ``skip`` leaves it out and
#: counts it (one line per file at the end).
BadRecords = Literal["error", "skip"]
BAD_RECORDS: tuple[str, ...] = get_args(BadRecords)
#: What a field must hold: ``text`` a non-empty string; ``document`` a string (a blank one is no
#: document and is passed over, as blank lines of a .txt file are); ``label`` a string or an integer.
FieldKind = Literal["text", "document", "label"]

#: Splits a user may name; a missing validation split is cut from train by hash.
RECORD_SPLITS: tuple[str, ...] = ("train", "validation", "test")
EXTENSIONS: dict[str, RecordFormat] = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
#: Rows per pandas / pyarrow batch: a few MB of memory, whatever the file size.
_BATCH_ROWS = 10_000
_MISSING = object()
#: Type names as a JSON (or CSV / parquet) user knows them.
_TYPE_NAMES = {"list": "a list", "dict": "an object", "int": "a number", "float": "a number", "bool": "a boolean",
               "int64": "a number", "float64": "a number", "ndarray": "a list"}


def check_bad_records(value: str) -> None:
    """Raise a one-line ``ValueError`` unless ``value`` is one of ``BAD_RECORDS``."""
    if value not in BAD_RECORDS:
        raise ValueError(f"bad_records must be one of {list(BAD_RECORDS)}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Checking every record


def _type_name(value: Any) -> str:
    name = type(value).__name__
    return _TYPE_NAMES.get(name, f"a {name}")


def field_problem(value: Any, field: str, kind: FieldKind) -> tuple[str, str] | None:
    """What is wrong with ``value`` as ``field`` of kind ``kind``, or None when it is fine.

    Returns:
        ``(summary, detail)``: a short phrase for the count of skipped records ("field 'text' not a
        string") and the phrase of a one-record error ("field 'text' is a list, not a string").
    """
    if value is _MISSING:
        return f"no field {field!r}", f"has no field {field!r}"
    if value is None:
        return f"field {field!r} null", f"field {field!r} is null"
    if isinstance(value, float) and math.isnan(value):  # how pandas reads an empty CSV cell
        return f"field {field!r} empty", f"field {field!r} is empty"
    if kind == "label":
        if isinstance(value, str):
            return None if value.strip() else (f"field {field!r} empty", f"field {field!r} is an empty string")
        if isinstance(value, bool) or _is_integral(value):
            return None
        return (f"field {field!r} not a string or an integer",
                f"field {field!r} is {_type_name(value)} ({_short(value)}), not a string or an integer")
    if not isinstance(value, str):
        return f"field {field!r} not a string", f"field {field!r} is {_type_name(value)}, not a string"
    if kind == "text" and not value.strip():
        return f"field {field!r} empty", f"field {field!r} is empty"
    return None


def _is_integral(value: Any) -> bool:
    import numbers

    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def plain_value(value: Any, kind: FieldKind) -> Any:
    """A checked value as a plain Python ``str`` or ``int`` (numpy ints and integral floats become ints)."""
    if kind == "label" and not isinstance(value, str):
        return int(value)
    return value


class RecordTally:
    """Counts the records of one file and the bad ones; refuses or skips each bad one.

    Args:
        path: The file named in messages.
        bad_records: ``error`` raises at the first bad record; ``skip`` counts it.
        unit: What a position is: ``line`` (JSON Lines, CSV), ``record`` (JSON array), ``row`` (parquet).
        source: How an error names the source; default ``data file '<path>'``.
    """

    def __init__(self, path: str, bad_records: BadRecords, unit: str, source: str | None = None) -> None:
        self.path, self.bad_records, self.unit = path, bad_records, unit
        self.source = source or f"data file {path!r}"
        self.records = 0
        self.skipped: Counter[str] = Counter()
        self.first: dict[str, int] = {}

    def bad(self, position: int, problem: tuple[str, str], unit: str | None = None) -> None:
        """A bad record at ``position``: raise (``error``) or count it (``skip``)."""
        unit = unit or self.unit
        summary, detail = problem
        if self.bad_records == "error":
            joint = ": " if detail.startswith("field") else " "  # "line 4: field 'text' is ...", "line 4 is not JSON"
            raise ValueError(f"{self.source} {unit} {position}{joint}{detail}; fix it, or pass "
                             f"--data.init_args.bad_records skip to leave such records out")
        self.skipped[summary] += 1
        self.first.setdefault(summary, position)

    def summary(self) -> str | None:
        """One line saying how many records were skipped and why, or None when none were."""
        total = sum(self.skipped.values())
        if not total:
            return None
        several = len(self.skipped) > 1
        reasons = [(f"{count} with " if several else "") + f"{why} (first at {self.unit} {self.first[why]})"
                   for why, count in self.skipped.most_common()]
        return f"skipped {total} of {self.records} records of {self.path}: {', '.join(reasons)}"


# ---------------------------------------------------------------------------------------------
# Reading one file


def json_layout(path: str) -> Literal["lines", "whole"]:
    """``lines`` when the file is JSON Lines (its first non-blank line is a JSON value other than an
    array), else ``whole`` (one JSON document: an array of records, or an object of columns)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return "whole"
                return "whole" if isinstance(first, list) else "lines"
    return "whole"


def _load_whole_json(path: str) -> list[Any]:
    """The records of a JSON document: an array's items, or the rows of an object of equal-length columns."""
    with open(path, encoding="utf-8") as handle:
        try:
            whole = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"data file {path!r} is neither JSON Lines nor JSON (line {error.lineno}: "
                             f"{error.msg})") from None
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict) and whole and all(isinstance(v, list) for v in whole.values()) \
            and len({len(v) for v in whole.values()}) == 1:
        names = list(whole)
        return [dict(zip(names, row, strict=True)) for row in zip(*whole.values(), strict=True)]
    return [whole]


def first_json_record(path: str) -> Any:
    """The first record of a JSON Lines file, or of a JSON array / columnar object file."""
    if json_layout(path) == "lines":
        with open(path, encoding="utf-8") as handle:
            return json.loads(next(line for line in handle if line.strip()))
    records = _load_whole_json(path)
    if not records:
        raise ValueError(f"data file {path!r} is an empty JSON array")
    return records[0]


def _json_records(path: str, tally: RecordTally) -> Iterator[tuple[int, dict[str, Any]]]:
    if json_layout(path) == "whole":
        tally.unit = "record"
        for number, record in enumerate(_load_whole_json(path), 1):
            tally.records += 1
            if isinstance(record, dict):
                yield number, record
            else:
                tally.bad(number, ("not a JSON object", f"is {_type_name(record)}, not a JSON object"))
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            tally.records += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                reason = f"{error.msg.removesuffix(' at')}, column {error.colno}"
                tally.bad(number, ("not valid JSON", f"is not valid JSON ({reason})"))
                continue
            if isinstance(record, dict):
                yield number, record
            else:
                tally.bad(number, ("not a JSON object", f"is {_type_name(record)}, not a JSON object"))


_CSV_BAD_LINE = re.compile(r"(?:Expected|expected) (\d+) fields,? (?:in line (\d+), )?saw (\d+)")


def _csv_records(
    path: str, fields: Mapping[str, FieldKind], tally: RecordTally, skipped_lines: set[int]
) -> Iterator[tuple[int, dict]]:
    import pandas as pd
    from pandas.errors import ParserError, ParserWarning

    # Text stays text ("NA", "null" and "007" are words, not missing values or numbers); only an
    # empty cell is missing. Labels are typed by pandas as `datasets` types them (ints stay ints).
    strings = {name: str for name, kind in fields.items() if kind != "label"}
    try:
        reader = pd.read_csv(path, chunksize=_BATCH_ROWS, dtype=strings, keep_default_na=False, na_values=[""],
                             on_bad_lines="error" if tally.bad_records == "error" else "warn")
        rows = 0
        while True:
            # Only around pandas' own reading: a generator suspended inside catch_warnings would
            # swallow every warning raised elsewhere meanwhile.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ParserWarning)
                chunk = next(reader, None)
            for warning in caught:  # rows pandas left out (skip mode): count them, by line
                match = re.search(r"line (\d+): expected \d+ fields, saw \d+", str(warning.message))
                if match is None:
                    warnings.warn(warning.message, warning.category, stacklevel=2)
                    continue
                line = int(match.group(1))
                skipped_lines.add(line)
                tally.records += 1
                tally.bad(line, ("a row with too many fields", "has too many fields"))
            if chunk is None:
                return
            names = [name for name in fields if name in chunk.columns]
            columns = [chunk[name].tolist() for name in names]
            for offset, values in enumerate(zip(*columns, strict=True)):
                tally.records += 1
                yield rows + offset, dict(zip(names, values, strict=True))
            rows += len(chunk)
    except ParserError as error:
        match = _CSV_BAD_LINE.search(str(error))
        if match and match.group(2):
            raise ValueError(f"data file {path!r} line {match.group(2)}: expected {match.group(1)} fields, saw "
                             f"{match.group(3)} (quote fields that hold commas); fix it, or pass "
                             f"--data.init_args.bad_records skip to leave such rows out") from None
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"data file {path!r} is not readable CSV ({reason})") from None


def csv_line_of_row(path: str, row: int, skipped_lines: set[int]) -> int:
    """The line on which data row ``row`` (0-based, as pandas counts) starts: the header and blank
    lines are not rows, and a quoted field may span lines. Only read when a row is reported."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        start, index = reader.line_num + 1, -1
        for record in reader:
            if record and start not in skipped_lines:
                index += 1
                if index == row:
                    return start
            start = reader.line_num + 1
    return start


def _parquet_records(path: str, fields: Mapping[str, FieldKind], tally: RecordTally) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = [name for name in fields if name in parquet.schema_arrow.names]
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=names):
        columns = [batch.column(name).to_pylist() for name in names]
        for values in zip(*columns, strict=True):
            row += 1
            tally.records += 1
            yield row, dict(zip(names, values, strict=True))


def read_records(
    path: str,
    data_format: RecordFormat,
    fields: Mapping[str, FieldKind],
    *,
    bad_records: BadRecords = "error",
    report: Callable[[str], Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the checked ``fields`` of every record of one file, in file order.

    Memory holds one batch of records. Each record's fields are checked as it is read: a bad record
    raises (``bad_records="error"``) or is left out and counted (``"skip"``); when the stream ends —
    the file read to its end, or the reader closed early (``max_documents``) — ``report`` gets one
    line with the count of the records read (nothing when nothing was skipped).
    Records of kind ``document`` whose text is blank are passed over without a count (no text).

    Args:
        path: The file.
        data_format: ``json`` (JSON Lines, or a JSON array / object of columns), ``csv`` or ``parquet``.
        fields: Field name -> what it must hold (see ``FieldKind``).
        bad_records: ``error`` or ``skip``.
        report: Called with the skip summary at the end of the file.

    Yields:
        ``{field: value}`` with plain ``str`` / ``int`` values.

    Raises:
        ValueError: (one line) a bad record in ``error`` mode, a malformed CSV row, a file that is
            neither JSON Lines nor JSON, or text that is not UTF-8.
    """
    check_bad_records(bad_records)
    unit = {"json": "line", "csv": "line", "parquet": "row"}[data_format]
    tally = RecordTally(path, bad_records, unit)
    skipped_lines: set[int] = set()  # CSV lines pandas left out (skip mode), which are no rows
    if data_format == "json":
        raw: Iterator[tuple[int, dict]] = _json_records(path, tally)
    elif data_format == "csv":
        raw = _csv_records(path, fields, tally, skipped_lines)
    else:
        raw = _parquet_records(path, fields, tally)
    try:
        yield from _checked(raw, path, data_format, fields, tally, skipped_lines)
    except UnicodeDecodeError as error:
        raise ValueError(f"data file {path!r} is not valid UTF-8 ({error.reason} at byte {error.start} of a "
                         f"block); re-encode it as UTF-8, e.g. iconv -t UTF-8") from None
    finally:
        raw.close()
        if report is not None and (line := tally.summary()):
            report(line)


def _checked(raw: Iterator[tuple[int, dict]], path: str, data_format: RecordFormat, fields: Mapping[str, FieldKind],
             tally: RecordTally, skipped_lines: set[int]) -> Iterator[dict[str, Any]]:
    """`read_records`' check of each raw record: bad ones go to `tally`, good ones come out plain."""
    bad_records = tally.bad_records
    for position, record in raw:
        problem = None
        for name, kind in fields.items():
            problem = field_problem(record.get(name, _MISSING), name, kind)
            if problem:
                break
        if problem is not None:
            if data_format == "csv" and (bad_records == "error" or problem[0] not in tally.first):
                # pandas counts rows, the message names a line: found by a scan, for reported rows only
                position = csv_line_of_row(path, position, skipped_lines)
            tally.bad(position, problem)
            continue
        if any(kind == "document" and not record[name].strip() for name, kind in fields.items()):
            continue
        yield {name: plain_value(record[name], kind) for name, kind in fields.items()}


# ---------------------------------------------------------------------------------------------
# Files of the fine-tuning data modules


def _expand(pattern: str) -> list[str]:
    path = os.path.expanduser(pattern)
    if any(char in pattern for char in "*?[") and not os.path.exists(path):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise FileNotFoundError(f"data file pattern {pattern!r} matches no files")
        return matches
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"data file {pattern!r} {what}")
    return [path]


def _columns(path: str, data_format: RecordFormat) -> list[str]:
    """The field names of a file, read from its first record / header / schema."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"data file {path!r} is empty (0 bytes)")
    if data_format == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as error:
            raise ValueError(f"data file {path!r} is not a readable parquet file ({error})") from None
    try:
        if data_format == "csv":
            with open(path, encoding="utf-8", newline="") as handle:
                return next(csv.reader(handle), [])
        record = first_json_record(path)
    except UnicodeDecodeError:
        raise ValueError(f"data file {path!r} is not valid UTF-8; re-encode it as UTF-8, e.g. iconv -t UTF-8") from None
    if not isinstance(record, dict):
        raise ValueError(f"data file {path!r} must hold JSON objects, found {type(record).__name__}")
    return list(record)


def resolve_record_files(
    data_files: RecordFiles, data_format: RecordFormat | None, fields: Mapping[str, str]
) -> tuple[dict[str, list[str]], RecordFormat]:
    """Expand ``data_files`` per split and check that every file has every field.

    Args:
        data_files: A path or glob (the train split), a list of them, or a dict from split
            (``train``, ``validation``, ``test``) to path(s).
        data_format: ``json``, ``csv`` or ``parquet``; None = from the extensions.
        fields: Role -> field name, e.g. ``{"text_field": "sentence", "label_field": "label"}``;
            the role names the option to set in the error message.

    Raises:
        FileNotFoundError, ValueError: (one line) a missing file, an unknown split or extension, mixed
            formats, or a file without one of the fields (its fields are listed).
    """
    if isinstance(data_files, str):
        data_files = {"train": data_files}
    elif isinstance(data_files, Sequence):
        data_files = {"train": list(data_files)}
    if not isinstance(data_files, Mapping):
        raise ValueError(f"data_files must be a path, a list or split -> paths, got {type(data_files).__name__}")
    unknown = sorted(set(data_files) - set(RECORD_SPLITS))
    if unknown or "train" not in data_files:
        raise ValueError(f"data_files needs a 'train' split and may add 'validation', 'test'; got {sorted(data_files)}")
    files = {split: [p for pattern in ([paths] if isinstance(paths, str) else paths) for p in _expand(pattern)]
             for split, paths in data_files.items()}
    every = [path for paths in files.values() for path in paths]
    if data_format is None:
        suffixes = {Path(path).suffix.lower() for path in every}
        if not suffixes <= set(EXTENSIONS):
            raise ValueError(f"data files with extension(s) {sorted(suffixes - set(EXTENSIONS))}: use "
                             f"{sorted(EXTENSIONS)} or set data_format to json, csv or parquet")
        formats = {EXTENSIONS[suffix] for suffix in suffixes}
        if len(formats) > 1:
            raise ValueError(f"data_files mix formats {sorted(formats)}; use one format")
        data_format = formats.pop()
    for path in every:
        columns = _columns(path, data_format)
        for option, name in fields.items():
            if name not in columns:
                raise ValueError(f"data file {path!r} has no field {name!r} ({option}); its fields are "
                                 f"{columns[:20]} (set --data.init_args.{option})")
    return files, data_format


def load_records(
    files: Mapping[str, list[str]],
    data_format: RecordFormat,
    fields: Mapping[str, FieldKind],
    *,
    bad_records: BadRecords = "error",
    report: Callable[[str], Any] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The checked ``fields`` of every record, per split, file after file (files checked by
    ``resolve_record_files``); see ``read_records`` for what is checked and how bad records go."""
    return {split: [record for path in paths
                    for record in read_records(path, data_format, fields, bad_records=bad_records, report=report)]
            for split, paths in files.items()}
