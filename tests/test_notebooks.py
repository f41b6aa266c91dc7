"""Every notebook under notebooks/ runs at the quick size in a fresh kernel, and shows what it claims to.

Each notebook must draw at least one PNG plot, run its "what we saw" cell (tagged ``verdict``, whose
markdown is computed from the run), and end by printing a ``RESULTS {...}`` line of finite numbers;
``CHECKS`` below then asserts something specific about each one's results. The line carries the code's
provenance, and the claim and headline that ``notebooks/run.py --table`` puts in the README.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from zoo.analysis.notebook import read_results  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VERDICTS = {"held", "did not hold", "mixed", "inconclusive"}

pytestmark = pytest.mark.slow


def numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or isinstance(value, str) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [value]
    items = value.values() if isinstance(value, dict) else value
    return [n for item in items for n in numbers(item)]


def check_quickstart(r: dict) -> None:
    assert r["loss_fell"] and r["final_val_loss"] < r["first_train_loss"]
    assert abs(r["first_train_loss"] - r["ln_vocab"]) < 0.1  # initialised near a uniform guess
    assert r["cached_equals_uncached"]
    assert set(r["val_loss"]) == {"learned", "rotary", "alibi"}


def check_positions(r: dict) -> None:
    assert set(r["val_loss"]) == {"none", "learned", "sinusoidal", "rotary", "alibi"}
    assert set(r["long_loss"]) == {"none", "sinusoidal", "rotary", "alibi"}  # a learned table cannot run longer
    assert r["train_len"] < r["long_len"]


def check_layernorm(r: dict) -> None:
    assert set(r["val_loss"]) == {"layernorm", "rmsnorm", "none"}
    assert all(t > 0 for t in r["norm_time_us"].values()) and r["rmsnorm_over_layernorm_time"] > 0


def check_pre_post(r: dict) -> None:
    assert r["runs"] == len(r["grid"]) and r["runs"] >= 4
    assert {g["placement"] for g in r["grid"]} == {"pre", "post"}
    assert 0 <= r["diverged"]["pre"] + r["diverged"]["post"] <= r["runs"]


def check_scaled_dot_product(r: dict) -> None:
    heads = r["head_dims"]
    assert len(heads) >= 2
    for key in ("entropy_scaled", "entropy_unscaled"):
        assert len(r[key]) == len(heads) and all(e >= 0 for e in r[key])
    # Random unit-variance q, k: without the scale the softmax sharpens as d_k grows (pure arithmetic).
    assert r["random_entropy_unscaled"][-1] < r["random_entropy_unscaled"][0]


def check_gqa(r: dict) -> None:
    assert r["kv_bytes_measured_equals_computed"]
    kv = r["kv_cache_bytes"]
    assert kv["MHA"] > kv["GQA-2"] > kv["MQA"] and kv["MHA"] == r["num_heads"] * kv["MQA"]
    assert all(v > 0 for v in r["tokens_per_s"].values())


def check_decoding(r: dict) -> None:
    settings = r["settings"]
    assert "greedy" in settings and len(settings) >= 4
    for s in settings.values():
        assert 0 <= s["distinct_2"] <= 1 and 0 <= s["repetition"] <= 1 and s["mean_log_prob"] <= 0
    # Greedy picks the most likely token each step: no sampled setting beats it on likelihood per token
    # by much (beam search could; sampling cannot in expectation).
    assert settings["greedy"]["mean_log_prob"] >= max(s["mean_log_prob"] for s in settings.values()) - 0.5


def check_scaling(r: dict) -> None:
    assert len(r["params"]) == len(r["val_loss"]) >= 4
    assert r["params"] == sorted(r["params"])
    assert r["alpha"] >= 0 and r["c"] >= 0 and r["r_squared"] <= 1


def check_attention_maps(r: dict) -> None:
    assert r["first_token_self_weight"] == pytest.approx(1.0)  # causal: the first token sees only itself
    assert r["gpt_upper_triangle_mass"] == 0.0
    assert r["bert_upper_triangle_mass"] > 0.0
    assert r["causal_max_change_before_edit"] == 0.0 and r["causal_change_at_edit"] > 0.0
    assert r["bert_max_change_before_edit"] > 0.0


def check_tokenization(r: dict) -> None:
    assert "char" in r["tokenizers"] and len(r["tokenizers"]) >= 2
    for t in r["tokenizers"].values():
        assert t["bytes_per_token"] > 0 and t["bits_per_byte"] > 0 and t["bytes_per_s"] > 0
    assert r["tokenizers"]["char"]["bytes_per_token"] == pytest.approx(1.0, abs=0.1)


def check_families(r: dict) -> None:
    assert set(r["families"]) == {"t5", "gpt", "bert"} and r["tasks"]
    assert max(r["params"].values()) < 1.1 * min(r["params"].values())  # zoo compare matched the budget
    assert all(0 <= v <= 1 for v in r["metrics"].values())


def check_lora(r: dict) -> None:
    assert 0 < r["trainable"]["lora"] < r["trainable"]["full"]


CHECKS: dict[str, Callable[[dict], None]] = {
    "00_quickstart": check_quickstart,
    "01_positions": check_positions,
    "02_layernorm": check_layernorm,
    "03_pre_post_norm": check_pre_post,
    "04_scaled_dot_product": check_scaled_dot_product,
    "05_mha_gqa_mqa": check_gqa,
    "06_decoding": check_decoding,
    "07_scaling_laws": check_scaling,
    "08_families_on_tasks": check_families,
    "09_attention_maps": check_attention_maps,
    "10_lora": check_lora,
    "11_tokenization": check_tokenization,
}


def test_there_are_notebooks():
    assert NOTEBOOKS
    assert {p.stem for p in NOTEBOOKS} <= set(CHECKS), "a new notebook needs a check in CHECKS"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook(path, monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_NOTEBOOK_SCALE", "quick")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell's traceback, when a cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook drew no plot"

    verdicts = [c for c in notebook.cells if "verdict" in c.get("metadata", {}).get("tags", [])]
    assert len(verdicts) == 1, "one cell tagged 'verdict' says what we saw"
    markdown = [o["data"]["text/markdown"] for o in verdicts[0].outputs if "text/markdown" in o.get("data", {})]
    assert markdown and len(markdown[0]) > 100, "the verdict cell displayed no computed markdown"

    text = "".join(o.get("text", "") for o in notebook.cells[-1].get("outputs", []))
    results = read_results(text)
    assert all(math.isfinite(n) for n in numbers(results))
    assert results["provenance"]["zoo_fingerprint"] and results["headline"]  # the README table's row
    if path.stem != "00_quickstart":
        assert results["claim"] and results["verdict"] in VERDICTS
        assert results["verdict"] in markdown[0]  # the verdict shown is the verdict reported
    CHECKS[path.stem](results)
