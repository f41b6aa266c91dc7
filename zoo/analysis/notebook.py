"""The knobs every experiment notebook shares: one size switch, and one machine-readable result line.

``ZOO_NOTEBOOK_SCALE`` picks the size: ``quick`` (what the tests run: seconds per notebook) or ``full``
(the default, what the committed outputs come from: minutes on a 2-core CPU). A notebook writes its
sizes once as ``pick(quick=..., full=...)``. Its last cell calls ``report(results)``, which prints one
``RESULTS {...}`` JSON line that ``tests/test_notebooks.py`` reads and checks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
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


def setup_notebook(cpu_threads: int | None = 1, dpi: int = 80) -> Scale:
    """What every experiment notebook does first; returns ``notebook_scale()``.

    Nothing is downloaded (``HF_*_OFFLINE``); import-time and per-run library notices that say nothing
    about the experiment are silenced; on a CPU, torch uses ``cpu_threads`` threads (tiny models run
    faster on one thread than on two that contend with other work; None leaves torch's default);
    figures render at ``dpi``.
    """
    scale = notebook_scale()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own use of a torch API
    warnings.filterwarnings("ignore", message=".*set_vital.*")  # torchdata's own use of a torch API
    for name in ("lightning.pytorch", "lightning.fabric"):  # per-run banners and info lines
        logging.getLogger(name).setLevel(logging.WARNING)
    import matplotlib.pyplot as plt
    import torch

    if cpu_threads and not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads)
    plt.rcParams.update({"figure.dpi": dpi})
    return scale


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


def report(results: Mapping[str, Any]) -> None:
    """Print ``RESULTS {json}``: the notebook's headline numbers and verdict, for tests and
    the README. Every number must be finite: a NaN headline means the experiment needs a look."""
    _check_finite(dict(results), "results")
    print(RESULTS_PREFIX + json.dumps(dict(results), sort_keys=True))


def read_results(text: str) -> dict[str, Any]:
    """The results dict from a cell's printed output (the last ``RESULTS`` line)."""
    lines = [line for line in text.splitlines() if line.startswith(RESULTS_PREFIX)]
    if not lines:
        raise ValueError("no RESULTS line in the output")
    return json.loads(lines[-1][len(RESULTS_PREFIX):])
