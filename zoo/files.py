"""Writing files so that a reader never sees half of one: a temporary file in the destination's own
directory, flushed and fsync'ed, then ``os.replace`` — atomic on one filesystem, whatever ``$TMPDIR``
is. (Writing elsewhere and moving, as Lightning's save does through fsspec, is a truncating copy
across filesystems: a kill mid-copy leaves the target empty.)

A failed write removes its temporary file, leaves the previous file intact, and raises a
``FileWriteError`` (an ``OSError``) whose message is one line naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_MARK = ".tmp-"  # temporary files are ``.{name}.tmp-{host}-{pid}``: never matched by ``*.ckpt`` globs


class FileWriteError(OSError):
    """A file could not be written; the message is one line: the path, why, and that the previous
    version (if any) is intact."""

    def __str__(self) -> str:
        return str(self.strerror)


def temporary_path(path: Path) -> Path:
    """The temporary file a write of ``path`` goes through (beside it, named by this host and process, so
    that a cleanup on another machine sharing the directory never takes it for a dead writer's)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{_host()}-{os.getpid()}")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def reason(error: OSError) -> str:
    """Why a write failed, in words a user acts on."""
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or type(error).__name__


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], what: str = "file") -> Iterator[IO[bytes]]:
    """Open a binary file for writing whose content replaces ``path`` only once the ``with`` block
    ends without an error; otherwise ``path`` is untouched and no temporary file is left.

    Raises:
        FileWriteError: One line naming ``what``, the path and the reason.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # torch.save's zip writer reports a failed write as a RuntimeError with the OSError as its context.
        cause = next((e for e in _chain(error) if isinstance(e, OSError)), None)
        if cause is None or isinstance(error, FileWriteError):
            raise
        kept = " (the previous file is intact)" if path.exists() else ""
        raise FileWriteError(cause.errno, f"cannot write the {what} {path}: {reason(cause)}{kept}") from None


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def atomic_write(path: str | os.PathLike[str], data: bytes | str, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path, what) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def atomic_save(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], what: str = "file") -> None:
    """Call ``write(handle)`` on the temporary file of an atomic write of ``path``."""
    with atomic_open(path, what) as handle:
        write(handle)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that writers killed mid-write left in ``directory`` — those of this
    host whose process is gone (another host's are never touched: its pids mean nothing here);
    returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in directory.glob(f".*{TEMP_MARK}*"):
        found = re.search(re.escape(TEMP_MARK) + r"(.+)-(\d+)$", candidate.name)
        if found and found.group(1) == _host() and not pid_alive(int(found.group(2))):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a crash right after could otherwise lose it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_identity(path: str | os.PathLike[str], whole_below: int = 64 << 20) -> dict[str, Any]:
    """Size and SHA-256 of a data file: of the whole file up to ``whole_below`` bytes, else of its first
    and last 8 MiB and its size (``partial`` says so) — enough to notice another file, cheap for
    corpora of gigabytes."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= whole_below:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(8 << 20))
            handle.seek(size - (8 << 20))
            digest.update(handle.read())
            digest.update(str(size).encode())
    return {"path": os.fspath(path.resolve()), "bytes": size, "sha256": digest.hexdigest(),
            "partial": size > whole_below}
