"""notebooks/run.py without running notebooks: --stale against HEAD's fingerprint, --table from RESULTS lines."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from zoo.analysis.provenance import commit_fingerprint

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebooks_run", ROOT / "notebooks" / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def notebook(path: Path, title: str, results: dict | None, *, noise: str = "training...\n") -> Path:
    """A saved notebook as nbformat writes it: a heading cell, then a code cell whose output ends in RESULTS."""
    text = noise + (f"RESULTS {json.dumps(results, sort_keys=True)}\n" if results is not None else "")
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "\n", "**The claim.** ...\n"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["report(results)"],
         "outputs": [{"name": "stdout", "output_type": "stream", "text": text.splitlines(keepends=True)}]},
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def recorded(fingerprint: str, commit: str = "0123456789abcdef", dirty: bool = False) -> dict:
    return {"commit": commit, "zoo_fingerprint": fingerprint, "zoo_dirty": dirty}


def test_stale_lists_notebooks_not_run_on_heads_code(tmp_path):
    head = commit_fingerprint("HEAD", ROOT)
    fresh = notebook(tmp_path / "01_fresh.ipynb", "01 · Fresh", {"verdict": "held", "provenance": recorded(head)})
    old = notebook(tmp_path / "02_old.ipynb", "02 · Old",
                   {"verdict": "held", "provenance": recorded("0" * 16, dirty=True)})
    before = notebook(tmp_path / "03_before.ipynb", "03 · Before", {"verdict": "mixed"})
    never = notebook(tmp_path / "04_never.ipynb", "04 · Never", None)
    reasons = run.stale([fresh, old, before, never], head)
    assert list(reasons) == [old, before, never]
    assert reasons[old] == f"ran on zoo/ {'0' * 16} (commit 0123456789 with uncommitted zoo/ changes); HEAD's is {head}"
    assert "no provenance" in reasons[before] and "no RESULTS" in reasons[never]


def test_stale_reads_every_committed_notebook():
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    reasons = run.stale(paths, commit_fingerprint("HEAD", ROOT))
    assert set(reasons) <= set(paths)
    assert all(run.saved_results(p) is not None for p in paths)  # every committed notebook has a RESULTS line


def test_the_table_regenerates_from_results_lines(tmp_path):
    results = {"verdict": "held", "claim": "GQA keeps MHA's quality | and speed", "headline": "GQA-2 +0.15 nats",
               "provenance": recorded("abcdef0123456789")}
    paths = [
        notebook(tmp_path / "00_quickstart.ipynb", "00 · zoo in a notebook", {"loss_fell": True}),  # no verdict: no row
        notebook(tmp_path / "05_mha_gqa_mqa.ipynb", "05 · MHA vs GQA vs MQA", results),
        notebook(tmp_path / "07_scaling_laws.ipynb", "07 · Scaling laws: loss as a power law", {"verdict": "mixed"}),
    ]
    table = run.notebook_table(paths, tmp_path)
    assert table.splitlines() == [
        "| notebook | claim (from the notes) | verdict | headline number |",
        "|---|---|---|---|",
        "| [05 MHA vs GQA vs MQA](05_mha_gqa_mqa.ipynb) | GQA keeps MHA's quality \\| and speed | held | "
        "GQA-2 +0.15 nats |",
        "| [07 Scaling laws](07_scaling_laws.ipynb) | — | mixed | — |",
        "",
        "Ran on: commit `0123456789`, zoo/ `abcdef0123456789`: 05; no recorded code (ran before results recorded "
        "it): 07.",
    ]
    head, tail = "# zoo\n\n## Notebooks\n\nIntro.\n\n", "\n\n## Tests\n"
    readme = f"{head}{run.TABLE_BEGIN}\n| old | table |\n{run.TABLE_END}{tail}"
    regenerated = run.replace_table(readme, table)
    assert regenerated == f"{head}{run.TABLE_BEGIN}\n{table}\n{run.TABLE_END}{tail}"
    assert run.replace_table(regenerated, table) == regenerated  # in place, again and again
    with pytest.raises(ValueError, match="notebook-table:begin"):
        run.replace_table("# zoo\n", table)


def test_the_readme_carries_the_markers_once():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(run.TABLE_BEGIN) == 1 and text.count(run.TABLE_END) == 1
    assert run.TABLE_HEADER in text.split(run.TABLE_BEGIN)[1].split(run.TABLE_END)[0]
