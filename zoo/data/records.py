"""Records from your files: JSON Lines, CSV or parquet rows with named fields, read through
``datasets``, for the fine-tuning data modules (``text``/``label`` for classification,
``prompt``/``response`` for instruction tuning).

Every file is checked before anything is read into memory: a missing file, an unknown extension or a
field the file does not have fails in one line that names the file and lists the fields it has.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from zoo.data.corpus import _first_json_record  # the JSON (Lines) sniffing the corpus reader uses

RecordFormat = Literal["json", "csv", "parquet"]
#: ``data_files`` as YAML gives it: a path or glob, a list of them, or split -> path(s).
RecordFiles = str | list[str] | dict[str, str | list[str]]

#: Splits a user may name; a missing validation split is cut from train by hash.
RECORD_SPLITS: tuple[str, ...] = ("train", "validation", "test")
EXTENSIONS: dict[str, RecordFormat] = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


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
    if data_format == "csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    record = _first_json_record(path)
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
    files: Mapping[str, list[str]], data_format: RecordFormat, fields: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The ``fields`` of every row, per split, through ``datasets.load_dataset`` (files checked by
    ``resolve_record_files``). Rows whose value of a field is null are refused in one line."""
    import datasets

    loaded = datasets.load_dataset(data_format, data_files=dict(files),
                                   cache_dir=None if cache_dir is None else os.fspath(cache_dir))
    out = {}
    for split in files:
        columns = {name: loaded[split][name] for name in fields}
        rows = [dict(zip(fields, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        for i, row in enumerate(rows):
            missing = [name for name, value in row.items() if value is None or value == ""]
            if missing:
                raise ValueError(f"data_files split {split!r} row {i}: no value for field(s) {missing}")
        out[split] = rows
    return out
