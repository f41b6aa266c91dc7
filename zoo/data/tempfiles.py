"""Temporary files and directories of cache builds, and the removal of those a killed build left.

A build (token shards, a tokenizer) writes under a temporary sibling name and renames it into place
when complete, so a crash never leaves something that looks finished. A build killed outright
(kill -9, out of memory, a node lost) cannot clean up after itself, so its temporary stays; the next
build in the same directory removes it. The name carries the host and process id of its builder,
and only a temporary whose builder ran on this host and is no longer alive is removed: a build
running in parallel (another run, another DDP node sharing the cache over NFS) is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

_SUFFIX = ".tmp"


def _host() -> str:
    # No dots or path separators: the name is split at its last dots.
    return socket.gethostname().replace(".", "_").replace(os.sep, "_") or "localhost"


def temporary_path(path: Path) -> Path:
    """Where a build of `path` writes until it is complete: `.<name>.<host>.<pid>.tmp` beside it."""
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}{_SUFFIX}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_owner(entry: Path) -> int | None:
    """The dead process on this host that left temporary `entry`, or None (not ours, or alive)."""
    name = entry.name
    if not (name.startswith(".") and name.endswith(_SUFFIX)):
        return None
    rest, _, pid = name[: -len(_SUFFIX)].rpartition(".")
    rest, _, host = rest.rpartition(".")
    if not (rest and pid.isdigit() and host == _host()):
        return None
    return None if _alive(int(pid)) else int(pid)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporaries in `directory` whose builder on this host has died; returns them."""
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:  # not there (yet), or unreadable: nothing to clean
        return removed
    for entry in entries:
        if stale_owner(entry) is None:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
