"""The one deterministic split of ``zoo fit`` and ``zoo compare``: each item goes to a split by a
hash of its own text and the seed, never by its position. Adding or reordering items does not move
the others, and duplicates never straddle splits."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def unit_hash(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) that depends only on ``key`` and ``seed``."""
    data = f"{seed}\x00{key}".encode("utf-8", errors="surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") / 2**64


def assign_splits(keys: Sequence[str], seed: int, fractions: Mapping[str, float]) -> list[str]:
    """The split of each key: one of ``fractions``' names with about that share, else ``train``.

    Example: ``assign_splits(texts, 0, {"validation": 0.1, "test": 0.1})``.
    """
    out = []
    for key in keys:
        u, edge, split = unit_hash(key, seed), 0.0, "train"
        for name, fraction in fractions.items():
            edge += fraction
            if u < edge:
                split = name
                break
        out.append(split)
    return out


def split_documents(docs: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split documents into train and validation with ``assign_splits``.

    Args:
        docs: The documents.
        val_fraction: Expected fraction of documents in validation, in (0, 1).
        seed: Changes which documents go to validation.

    Returns:
        ``(train, validation)``, each in the input order. With at least two distinct documents both
        are non-empty: if hashing leaves a side empty, the document nearest the cut moves over.

    Raises:
        ValueError: If ``val_fraction`` is outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    distinct = list(dict.fromkeys(docs))
    val_texts = {doc for doc, split in zip(distinct, assign_splits(distinct, seed, {"val": val_fraction}), strict=True)
                 if split == "val"}
    if len(distinct) >= 2 and (not val_texts or len(val_texts) == len(distinct)):
        nearest = sorted(distinct, key=lambda doc: unit_hash(doc, seed))
        if not val_texts:
            val_texts = {nearest[0]}
        else:
            val_texts.discard(nearest[-1])
    train = [doc for doc in docs if doc not in val_texts]
    val = [doc for doc in docs if doc in val_texts]
    return train, val
