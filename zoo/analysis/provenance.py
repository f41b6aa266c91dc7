"""Which code produced a result: the commit, and a fingerprint of the ``zoo/`` source it ran.

A commit alone does not say what ran (the working tree may differ from it), so every notebook's
``RESULTS`` line and every results file also records ``code_fingerprint()``: a hash over the files
under ``zoo/`` that git tracks or would track (untracked files that ``.gitignore`` does not exclude: a
new module not yet added is code that ran), as they are in the working tree. The same hash computed
from a commit's tree (``commit_fingerprint``) gives the same value when the files are the same, so a result is *stale*
exactly when its fingerprint differs from HEAD's (``python notebooks/run.py --stale``).

A file's content enters as its git blob id (``git hash-object``: the id git would store, after any
line-ending filters), its path beside it; the fingerprint is the first 16 hex digits of the SHA-256 of
those sorted ``path id`` lines. Outside a git checkout (an installed package) the files under the
package directory are hashed the same way, and the commit is ``None``.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]  # .../zoo
SOURCE_DIR = "zoo"


def _git(root: Path, *args: str, stdin: str | None = None) -> str | None:
    """``git -C root args`` stdout, or None when git or the repository is missing or the command fails."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True,
                              check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def repository_root(start: Path | None = None) -> Path | None:
    """The git work tree holding ``start`` (default: the imported ``zoo`` package), or None."""
    top = _git(start or PACKAGE, "rev-parse", "--show-toplevel")
    return Path(top.strip()) if top else None


def _digest(entries: dict[str, str]) -> str:
    """The fingerprint of ``path → blob id`` entries."""
    lines = "".join(f"{path} {blob}\n" for path, blob in sorted(entries.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def _blob_id(data: bytes) -> str:
    """Git's (SHA-1) blob id of ``data``, for hashing without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def code_fingerprint(root: Path | None = None) -> str:
    """Fingerprint of the tracked files under ``zoo/`` in the working tree of ``root``.

    Args:
        root: A git work tree (default: the one holding the imported ``zoo`` package). Without git the
            files under ``root/zoo`` (or the imported package) are hashed, ``__pycache__`` left out.
    """
    root = root or repository_root()
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", SOURCE_DIR) \
        if root else None
    if listed is None:
        package = root / SOURCE_DIR if root else PACKAGE
        files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return _digest({f"{SOURCE_DIR}/{p.relative_to(package).as_posix()}": _blob_id(p.read_bytes()) for p in files})
    # A tracked file deleted from the working tree drops out.
    present = sorted({path for path in listed.split("\0") if path and (root / path).is_file()})
    ids = _git(root, "hash-object", "--stdin-paths", stdin="".join(f"{p}\n" for p in present)) if present else ""
    if ids is None:
        raise OSError(f"git hash-object failed on the files under {root / SOURCE_DIR}")
    return _digest(dict(zip(present, ids.split(), strict=True)))


def commit_fingerprint(commit: str = "HEAD", root: Path | None = None) -> str | None:
    """The fingerprint ``code_fingerprint`` gives for ``commit``'s ``zoo/`` files (None without git)."""
    root = root or repository_root()
    tree = _git(root, "ls-tree", "-r", "-z", commit, "--", SOURCE_DIR) if root else None
    if tree is None:
        return None
    entries = {}
    for line in filter(None, tree.split("\0")):
        meta, path = line.split("\t", 1)
        _mode, kind, blob = meta.split()
        if kind == "blob":
            entries[path] = blob
    return _digest(entries)


def head_commit(root: Path | None = None) -> str | None:
    """The full hash of HEAD in ``root``'s repository (None without git)."""
    root = root or repository_root()
    head = _git(root, "rev-parse", "HEAD") if root else None
    return head.strip() if head else None


def provenance(root: Path | None = None) -> dict[str, Any]:
    """What a result records about the code that made it.

    Returns:
        ``commit`` (HEAD's hash or None), ``zoo_fingerprint`` (``code_fingerprint()``) and ``zoo_dirty``
        (the working tree's ``zoo/`` differs from HEAD's: the commit alone does not reproduce it).
    """
    root = root or repository_root()
    fingerprint = code_fingerprint(root)
    committed = commit_fingerprint("HEAD", root) if root else None
    return {"commit": head_commit(root) if root else None, "zoo_fingerprint": fingerprint,
            "zoo_dirty": committed is not None and committed != fingerprint}
