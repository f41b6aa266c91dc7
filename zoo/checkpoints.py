"""The one loader of zoo checkpoints: every door that opens one — ``zoo fit/validate/test/predict
--ckpt_path``, ``pretrained=``, ``zoo generate``, ``zoo convert``, ``zoo.tasks.load_task`` and
``SomeTask.load_from_checkpoint`` — goes through ``load_checkpoint``.

A file that cannot be used fails with one ``CheckpointError`` line, ``"{what} {path}: {fault}"``:
not a checkpoint (missing, empty, not a zip archive, truncated), refused because it needs unsafe
unpickling, not a zoo checkpoint, another family or task than the caller needs, or a vocabulary
that differs from the data's. Files are read only with ``torch.load(weights_only=True)``, whose
unpickler builds tensors and plain containers and nothing else: no pickled object's code ever runs.

Importable without Lightning: task classes are imported only once a file names one.
"""

from __future__ import annotations

import importlib
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.models.registry import FAMILIES, Family, family_of

TASK_KEY = "zoo_task"  # checkpoint entry naming the task class (re-exported by zoo.tasks.base)
ZIP_MAGIC = b"PK\x03\x04"  # torch.save has written zip archives since torch 1.6
PICKLE_MAGIC = b"\x80"  # the opcode every pickle of protocol >= 2 starts with


RUN_FILE = "run.json"  # marks a run directory (zoo.runs)
VERSION = re.compile(r"^version_(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, in one line: ``"{what} {path}: {fault}"``.

    Attributes:
        fault: What is wrong, without the file.
        path: The file (None while a hook that raised it did not know it; see ``at``).
        what: Which argument named the file (``--ckpt_path``, ``pretrained``, ``checkpoint``, ...).
    """

    def __init__(self, fault: str, path: str | Path | None = None, what: str = "checkpoint"):
        self.fault, self.path, self.what = fault, None if path is None else str(path), what
        super().__init__(fault if path is None else f"{what} {path}: {fault}")

    def at(self, path: str | Path, what: str) -> CheckpointError:
        """The same fault, naming ``path`` (kept if it already names one)."""
        return self if self.path is not None else type(self)(self.fault, path, what)


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The file does not exist (a ``FileNotFoundError`` too)."""


def load_checkpoint(
    path: str | Path,
    *,
    what: str = "--ckpt_path",
    task: type | None = None,
    family: Family | None = None,
    map_location: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """The zoo checkpoint at ``path``, read with ``torch.load(weights_only=True)`` and checked.

    Args:
        path: The ``.ckpt`` file.
        what: The argument that named it, for messages (``--ckpt_path``, ``pretrained``, ...).
        task: The task class the caller will build: the checkpoint must hold its family and that
            task, a subclass of it, or a base of it.
        family: The family the caller needs (weights only, any task of the family).
        map_location: As ``torch.load``'s.

    Raises:
        CheckpointError: One line naming the file and the fault (``CheckpointNotFoundError``, a
            ``FileNotFoundError`` too, when it does not exist).
    """
    checkpoint = _read(run_checkpoint(path, what), what, map_location)
    task_cls = _check_zoo(checkpoint, path, what)
    got = family_of(task_cls.config_class)
    if task is not None:
        wanted = family_of(task.config_class)
        if got is not wanted or not (issubclass(task_cls, task) or issubclass(task, task_cls)):
            raise CheckpointError(f"holds a {got.name} model of {task_cls.__name__}, but {task.__name__} needs "
                                  f"a {wanted.name} one", path, what)
    if family is not None and got is not family_of(family.config_class):
        raise CheckpointError(f"holds a {got.name} model of {task_cls.__name__}, not the {family.name} model "
                              "asked for", path, what)
    return checkpoint


def task_class(checkpoint: Mapping[str, Any]) -> type:
    """The task class of a checkpoint ``load_checkpoint`` returned."""
    return _resolve_task(checkpoint[TASK_KEY])


def check_tokenizer(
    checkpoint: Mapping[str, Any], *, fingerprint: str, vocab_size: int, path: str | Path | None, what: str,
    fix: str,
) -> None:
    """Refuse a tokenizer other than the one the checkpoint was trained with: its data's record
    (``zoo.data.tokenizers.tokenizer_state``: ``tokenizer_fingerprint``, ``vocab_size``, ...)
    and its model's ``vocab_size``.

    Raises:
        CheckpointError: Fingerprints or vocabulary sizes differ; ``fix`` says what to pass instead.
    """
    recorded = data_record(checkpoint)
    saved_fingerprint = recorded.get("tokenizer_fingerprint")
    model_vocab = checkpoint.get("hyper_parameters", {}).get("config", {}).get("vocab_size")
    saved_vocab = recorded.get("vocab_size", model_vocab)
    if saved_fingerprint in (None, fingerprint) and {saved_vocab, model_vocab} <= {None, vocab_size}:
        return
    where = ", saved inside it" if recorded.get("tokenizer_bytes") else \
        f", recorded at {recorded['tokenizer_file']}" if recorded.get("tokenizer_file") else ""
    raise CheckpointError(
        f"trained with another tokenizer (fingerprint {saved_fingerprint}, vocab_size {saved_vocab}{where}) than "
        f"this one (fingerprint {fingerprint}, vocab_size {vocab_size}); {fix}", path, what)


def checkpoint_tokenizer(checkpoint: Mapping[str, Any], path: str | Path | None = None, what: str = "checkpoint"):
    """The tokenizer a checkpoint was trained with: the bytes its data module saved in it (or, for a
    checkpoint written before they were, the file it recorded, if that still exists); None when it
    holds neither (``zoo convert``'s checkpoints of Hugging Face weights).

    Raises:
        CheckpointError: The saved bytes are not a tokenizer (a damaged file).
    """
    from zoo.data.tokenizers import load_tokenizer, tokenizer_from_bytes

    recorded = data_record(checkpoint)
    data = recorded.get("tokenizer_bytes")
    if isinstance(data, (bytes, bytearray)):
        try:
            return tokenizer_from_bytes(bytes(data), "its saved tokenizer")
        except ValueError as error:
            raise CheckpointError(str(error), path, what) from None
    file = recorded.get("tokenizer_file")
    if isinstance(file, str) and Path(file).is_file():
        return load_tokenizer(file)
    return None


def data_record(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the data module saved about its tokenizer (Lightning stores it under the module's class
    name); empty for a checkpoint without one (``zoo convert``'s)."""
    for value in checkpoint.values():
        if isinstance(value, Mapping) and "tokenizer_fingerprint" in value:
            return value
    return {}


# ---------------------------------------------------------------------------------------------
# Runs: a directory may stand for its newest checkpoint


def versions(base: Path) -> list[int]:
    """The version numbers under ``base`` (``version_<N>`` directories), sorted."""
    if not base.is_dir():
        return []
    return sorted(int(m.group(1)) for p in base.iterdir() if p.is_dir() and (m := VERSION.match(p.name)))


def checkpoint_step(path: Path) -> int | None:
    """The ``global_step`` a checkpoint file holds; None when it cannot be read (damaged, half-written)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a candidate
        return None
    step = checkpoint.get("global_step") if isinstance(checkpoint, Mapping) else None
    return int(step) if isinstance(step, int) else None


def newest_checkpoint(directory: Path) -> tuple[Path, int] | None:
    """The checkpoint in ``directory`` with the highest step — ``last.ckpt``, a ``best-*`` file or any
    other, whichever holds the newest state — preferring ``last*`` and then the newer file on a tie.
    Files that cannot be read are skipped with a warning naming them."""
    if not directory.is_dir():
        return None
    found = []
    for path in directory.glob("*.ckpt"):
        step = checkpoint_step(path)
        if step is None:
            warnings.warn(f"skipping {path}: not a readable checkpoint", stacklevel=2)
            continue
        found.append((step, path.name.startswith("last"), path.stat().st_mtime_ns, path))
    if not found:
        return None
    step, _, _, path = max(found)
    return path, step


def run_checkpoint(path: str | Path, what: str = "checkpoint") -> Path:
    """``path`` itself, or — for a run directory (``runs/gpt_clm/version_3``, holding ``run.json``) or a
    run name's directory (``runs/gpt_clm``: its newest version) — the newest checkpoint in it, so every
    argument that takes a checkpoint takes a run too. A directory that is neither is returned as it is
    (a Hugging Face model directory, or an error for the caller to report)."""
    path = Path(path)
    if not path.is_dir():
        return path
    if not (path / RUN_FILE).is_file() and versions(path):
        path = path / f"version_{versions(path)[-1]}"
    if (path / RUN_FILE).is_file():
        newest = newest_checkpoint(path / "checkpoints")
        if newest is None:
            raise CheckpointNotFoundError("a run directory without checkpoints (stopped before its first save)",
                                          path, what)
        return newest[0]
    return path


# ---------------------------------------------------------------------------------------------
# The file


def _read(path: Path, what: str, map_location: Any) -> Any:
    if not path.exists():
        raise CheckpointNotFoundError("no such file", path, what)
    if path.is_dir():
        raise CheckpointError("is a directory, not a checkpoint file", path, what)
    try:
        with path.open("rb") as file:
            head = file.read(len(ZIP_MAGIC))
    except OSError as error:
        raise CheckpointError(f"cannot be read ({error.strerror or error})", path, what) from None
    if not head:
        raise CheckpointError("not a checkpoint: the file is empty", path, what)
    if head != ZIP_MAGIC:
        kind = "a bare pickle, never unpickled here" if head.startswith(PICKLE_MAGIC) else "random or other data"
        raise CheckpointError(f"not a checkpoint: not the zip archive torch.save writes ({kind})", path, what)
    try:
        # mmap: tensors are mapped, not read, so checking a large file before Lightning loads it is cheap.
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(_unsafe(str(error)), path, what) from None
    except RuntimeError as error:
        message = str(error)
        if "PytorchStreamReader failed reading" in message:
            reason = message.split("PytorchStreamReader ", 1)[1].split(". ", 1)[0]
            fault = f"not a checkpoint: a truncated or corrupt zip archive ({reason})"
        else:  # a zip of something else: no data.pkl, files outside one folder, ...
            reason = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", _first_line(message))
            reason = re.sub(r"\s*\(Could this error message be improved\?.*$", "", reason)
            fault = f"not a checkpoint: a zip archive torch.save did not write ({reason})"
        raise CheckpointError(fault, path, what) from None
    except Exception as error:  # anything else torch.load can meet in a damaged file
        raise CheckpointError(f"not a checkpoint: torch.load failed ({type(error).__name__}: "
                              f"{_first_line(str(error))})", path, what) from None


def _unsafe(message: str) -> str:
    """The one line for a file ``weights_only=True`` refused — never torch's advice to retry unsafely."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    needs = f"unpickling {found.group(1)}" if found else "unpickling beyond tensors and plain values"
    return (f"refused: loading it needs {needs}, which can run arbitrary code; zoo reads checkpoints only with "
            "torch.load(weights_only=True) (zoo checkpoints hold tensors and plain values)")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


# ---------------------------------------------------------------------------------------------
# Its contents


def _check_zoo(checkpoint: Any, path: str | Path, what: str) -> type:
    """The task class of a zoo checkpoint; anything else is refused in one line."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"not a zoo checkpoint: it holds a {type(checkpoint).__name__}, not a checkpoint dict",
                              path, what)
    if TASK_KEY not in checkpoint:
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            kind = f"a bare state_dict of {len(checkpoint)} tensors"
        elif "pytorch-lightning_version" in checkpoint:
            kind = "a Lightning checkpoint of another LightningModule"
        else:
            keys = ", ".join(repr(k) for k in list(checkpoint)[:5]) + (", ..." if len(checkpoint) > 5 else "")
            kind = f"a dict of {keys}" if checkpoint else "an empty dict"
        raise CheckpointError(f"not a zoo checkpoint: {kind}, without the '{TASK_KEY}' entry zoo fit and zoo "
                              "convert write", path, what)
    name = checkpoint[TASK_KEY]
    try:
        task_cls = _resolve_task(name)
    except LookupError:
        tasks = sorted({family.task for family in FAMILIES.values()})
        raise CheckpointError(f"not a zoo checkpoint: its '{TASK_KEY}' entry {name!r} is not a zoo task ({tasks})",
                              path, what) from None
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not isinstance(hparams.get("config"), Mapping):
        raise CheckpointError("incomplete zoo checkpoint: no hyper_parameters['config'] (the model config)", path, what)
    if not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError("incomplete zoo checkpoint: no 'state_dict' (the weights)", path, what)
    try:
        task_cls.config_class.from_dict(dict(hparams["config"]))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"its model config is invalid: {_first_line(str(error))}", path, what) from None
    return task_cls


def _resolve_task(name: Any) -> type:
    """The task class a ``TASK_KEY`` entry names: a family's task (by its registry path, its
    module path, or — for checkpoints of an older layout — its class name under ``zoo.``), or
    another ``LanguageModelTask`` subclass inside the zoo package. Nothing outside ``zoo.`` is
    imported because a file says so."""
    if not isinstance(name, str) or not name.startswith("zoo."):
        raise LookupError(name)
    from zoo.tasks.base import LanguageModelTask  # Lightning, only once a file names a task

    for family in FAMILIES.values():
        cls = family.task_class
        if name in (family.task, f"{cls.__module__}.{cls.__qualname__}") or name.rsplit(".", 1)[1] == cls.__name__:
            return cls
    module, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise LookupError(name) from None
    if not (isinstance(cls, type) and issubclass(cls, LanguageModelTask) and hasattr(cls, "config_class")):
        raise LookupError(name)
    return cls
