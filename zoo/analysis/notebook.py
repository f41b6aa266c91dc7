"""The knobs every experiment notebook shares: one size switch, and one machine-readable result line.

``ZOO_NOTEBOOK_SCALE`` picks the size: ``quick`` (what the tests run: seconds per notebook) or ``full``
(the default, what the committed outputs come from: minutes on a 2-core CPU). A notebook writes its
sizes once as ``pick(quick=..., full=...)``. Its last cell calls ``report(results)``, which prints one
``RESULTS {...}`` JSON line that ``tests/test_notebooks.py`` reads and checks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args

Scale = Literal["quick", "full"]
SCALE_VARIABLE = "ZOO_NOTEBOOK_SCALE"
RESULTS_PREFIX = "RESULTS "
T = TypeVar("T")


def notebook_scale() -> Scale:
    """``$ZOO_NOTEBOOK_SCALE`` (``quick`` or ``full``; unset = ``full``); any other value fails in one line."""
    value = os.environ.get(SCALE_VARIABLE, "full").strip().lower() or "full"
    if value not in get_args(Scale):
        raise ValueError(f"{SCALE_VARIABLE}={value!r} is not one of {list(get_args(Scale))}")
    return value  # type: ignore[return-value]


def pick(*, quick: T, full: T) -> T:
    """The value for the current ``notebook_scale()``."""
    return quick if notebook_scale() == "quick" else full


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"result {path} = {value} is not finite")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{path}[{i}]")
        return
    raise TypeError(f"result {path} is a {type(value).__name__}; use numbers, strings, lists and dicts")


def report(results: Mapping[str, Any]) -> str:
    """Print (and return) ``RESULTS {json}``: the notebook's headline numbers and verdict, for tests and
    the README. Every number must be finite: a NaN headline means the experiment needs a look."""
    _check_finite(dict(results), "results")
    line = RESULTS_PREFIX + json.dumps(dict(results), sort_keys=True)
    print(line)
    return line


def read_results(text: str) -> dict[str, Any]:
    """The results dict from a cell's printed output (the last ``RESULTS`` line)."""
    lines = [line for line in text.splitlines() if line.startswith(RESULTS_PREFIX)]
    if not lines:
        raise ValueError("no RESULTS line in the output")
    return json.loads(lines[-1][len(RESULTS_PREFIX):])
