"""zoo: a transformer architecture zoo on PyTorch and Lightning.

``zoo.load(path)`` returns ``(model, tokenizer)`` from a zoo checkpoint or an export directory
(see ``zoo.loading``); it is imported on first use, so ``import zoo`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from zoo.loading import load

        return load
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
