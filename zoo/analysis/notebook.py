"""The knobs every experiment notebook shares: one size switch, and one machine-readable result line.

``ZOO_NOTEBOOK_SCALE`` picks the size: ``quick`` (what the tests run: seconds per notebook) or ``full``
(the default, what the committed outputs come from: minutes on a 2-core CPU). A notebook writes its
sizes once as ``pick(quick=..., full=...)``. Its last cell calls ``report(results, claim=..., headline=...)``,
which prints one ``RESULTS {...}`` JSON line that ``tests/test_notebooks.py`` reads and checks, that
carries the code's provenance (commit and ``code_fingerprint()`` of ``zoo/``: ``notebooks/run.py --stale``
compares it with HEAD's), and from which ``notebooks/run.py --table`` writes the README's notebook table.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args

from zoo.analysis.provenance import code_fingerprint, provenance
from zoo.analysis.stats import VERDICTS, PairedComparison

__all__ = ["ClaimVerdict", "claim_verdict", "code_fingerprint", "notebook_scale", "overall_verdict", "pick",
           "read_results", "report", "setup_notebook"]

Scale = Literal["quick", "full"]
SCALE_VARIABLE = "ZOO_NOTEBOOK_SCALE"
RESULTS_PREFIX = "RESULTS "
RESERVED = ("claim", "headline", "provenance")  # keys report() adds
ClaimVerdict = Literal["held", "did not hold", "inconclusive"]
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


def claim_verdict(comparison: PairedComparison, expected: str | Collection[str]) -> ClaimVerdict:
    """Whether a claim about one paired comparison held.

    Args:
        comparison: The entry against its baseline (``paired_comparison``).
        expected: The comparison verdict(s) the claim predicts, e.g. ``"worse"`` for "sinusoidal is worse
            than learned", or ``{"no detectable difference", "negligible", "better"}`` for "GQA keeps
            MHA's quality".

    Returns:
        ``held`` when the comparison's verdict is expected; ``inconclusive`` when the comparison is
        inconclusive (too few seeds to tell) and the claim did not expect that; else ``did not hold``.
    """
    expected = {expected} if isinstance(expected, str) else set(expected)
    unknown = expected - set(VERDICTS)
    if unknown:
        raise ValueError(f"expected verdict(s) {sorted(unknown)} are not among {list(VERDICTS)}")
    if comparison.verdict in expected:
        return "held"
    return "inconclusive" if comparison.verdict == "inconclusive" else "did not hold"


def overall_verdict(claims: Sequence[ClaimVerdict | bool]) -> str:
    """A notebook's verdict from its claims' (a bool is a claim checked without statistics: True held).

    ``held`` / ``did not hold`` / ``inconclusive`` when every claim says so; ``mixed`` when some held and
    some did not; otherwise (some inconclusive, the rest agreeing) ``inconclusive``.
    """
    if not claims:
        raise ValueError("overall_verdict needs at least one claim")
    words = {("held" if c else "did not hold") if isinstance(c, bool) else c for c in claims}
    if not words <= set(get_args(ClaimVerdict)):
        raise ValueError(f"claims must be True, False or one of {list(get_args(ClaimVerdict))}, got {sorted(words)}")
    if {"held", "did not hold"} <= words:
        return "mixed"
    return words.pop() if len(words) == 1 else "inconclusive"


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


def _headline(template: str, results: Mapping[str, Any]) -> str:
    try:
        return template.format_map(results)
    except (KeyError, IndexError) as missing:
        raise ValueError(f"headline template {template!r} names {missing}, which the results lack") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"headline template {template!r} does not format the results: {error}") from None


def report(results: Mapping[str, Any], *, claim: str | None = None, headline: str | None = None) -> None:
    """Print ``RESULTS {json}``: the notebook's numbers and verdict, for tests and the README table.

    Every number must be finite: a NaN headline means the experiment needs a look. The line also
    carries ``provenance`` (commit, ``zoo_fingerprint``, ``zoo_dirty``: see ``zoo.analysis.provenance``).

    Args:
        results: The numbers (plain JSON values); ``verdict`` for a notebook that tests a claim.
        claim: The claim under test, in a few words (the README table's "claim" column).
        headline: A ``str.format`` template over ``results`` for the README's "headline number"
            column, e.g. ``"learned {val_loss[learned]:.2f} vs sinusoidal {val_loss[sinusoidal]:.2f} nats"``:
            the table can only quote numbers the results carry.
    """
    results = dict(results)
    clash = [key for key in RESERVED if key in results]
    if clash:
        raise ValueError(f"results may not use the key(s) {clash}: report() adds them")
    _check_finite(results, "results")
    if claim is not None:
        results["claim"] = claim
    if headline is not None:
        results["headline"] = _headline(headline, results)
    results["provenance"] = provenance()
    print(RESULTS_PREFIX + json.dumps(results, sort_keys=True))


def read_results(text: str) -> dict[str, Any]:
    """The results dict from a cell's printed output (the last ``RESULTS`` line)."""
    lines = [line for line in text.splitlines() if line.startswith(RESULTS_PREFIX)]
    if not lines:
        raise ValueError("no RESULTS line in the output")
    return json.loads(lines[-1][len(RESULTS_PREFIX):])
