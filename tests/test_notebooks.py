"""Every notebook under notebooks/ runs at the quick size in a fresh kernel, and shows what it claims to.

Each notebook must draw at least one PNG plot, run its "what we saw" cell (tagged ``verdict``, whose
markdown is computed from the run), and end by printing a ``RESULTS {...}`` line of finite numbers;
``CHECKS`` below then asserts something specific about each one's results — for the claims that hold
robustly even at the quick size (the causal invariance, scaled vs unscaled attention entropy, subwords'
bits per byte, greedy's repetition, ...), their *direction*, not just that cells ran. The line carries the
code's provenance, and the claim and headline that ``notebooks/run.py --table`` puts in the README.
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


def paired(record: dict) -> None:
    """A paired comparison as RESULTS carry it: its interval holds its mean, and its verdict is a word."""
    assert record["ci_low"] <= record["difference"] <= record["ci_high"] and record["n"] >= 3
    assert record["verdict"] in {"better", "worse", "negligible", "no detectable difference", "inconclusive"}


def check_positions(r: dict) -> None:
    assert set(r["val_loss"]) == {"learned", "learned √d", "sinusoidal", "sinusoidal √d", "none", "rotary", "alibi"}
    # A learned table cannot run longer; each other scheme is measured against itself trained at the longer length.
    assert set(r["long_loss"]) == set(r["long_loss_reference"]) == {"sinusoidal √d", "none", "rotary", "alibi"}
    assert r["train_len"] < r["long_len"]
    for table in ("vs_learned", "scaling_effect", "extrapolation_vs_trained_long"):
        for record in r[table].values():
            paired(record)


def check_layernorm(r: dict) -> None:
    assert set(r["val_loss"]) == {"layernorm", "rmsnorm", "none"}
    assert all(t > 0 for t in r["norm_time_us"].values()) and r["rmsnorm_over_layernorm_time"] > 0
    assert r["rounds"] >= 3 and r["norm_time_rmsnorm_vs_layernorm"]["bigger (16×256×512)"]["n"] == r["rounds"]
    # Direction: without norms the model is behind LayerNorm at the first validation (it trains slower).
    assert r["none_vs_layernorm_first_validation"]["difference"] > 0


def check_pre_post(r: dict) -> None:
    assert r["runs"] == len(r["grid"]) and r["runs"] >= 4 * r["seeds"] and r["seeds"] >= 3
    assert {g["placement"] for g in r["grid"]} == {"pre", "post"}
    assert 0 <= r["diverged"]["pre"] + r["diverged"]["post"] <= r["runs"]
    assert all(0 <= f <= r["cells"] for fails in r["failed_per_seed"].values() for f in fails)
    paired(r["post_vs_pre_failed_cells"])


def check_scaled_dot_product(r: dict) -> None:
    heads = r["head_dims"]
    assert len(heads) >= 2
    for key in ("entropy_scaled", "entropy_unscaled"):
        assert len(r[key]) == len(heads) and all(e >= 0 for e in r[key])
    # Random unit-variance q, k: without the scale the softmax sharpens as d_k grows (pure arithmetic).
    assert r["random_entropy_unscaled"][-1] < r["random_entropy_unscaled"][0]
    # Direction, trained: at the largest head size unscaled attention ends sharper than scaled.
    assert r["entropy_unscaled"][-1] < r["entropy_scaled"][-1]
    for record in [*r["unscaled_vs_scaled"].values(), *r["entropy_sharper"].values()]:
        paired(record)


def check_gqa(r: dict) -> None:
    assert r["kv_bytes_measured_equals_computed"]
    kv = r["kv_cache_bytes"]
    assert r["num_heads"] == 16 and r["kv_heads"] == {"MHA": 16, "GQA-4": 4, "MQA": 1}
    assert kv["MHA"] == 4 * kv["GQA-4"] == r["num_heads"] * kv["MQA"]
    assert all(v > 0 for v in r["tokens_per_s"].values())
    paired(r["gqa_vs_mha"])
    assert all(c["n"] == r["rounds"] for c in r["speed_vs_mqa"].values())


def check_decoding(r: dict) -> None:
    settings = r["settings"]
    assert "greedy" in settings and len(settings) >= 4
    for s in settings.values():
        assert 0 <= s["distinct_2"] <= 1 and 0 <= s["repetition"] <= 1 and s["mean_log_prob"] <= 0
    # Greedy picks the most likely token each step: no sampled setting beats it on likelihood per token
    # by much (beam search could; sampling cannot in expectation).
    assert settings["greedy"]["mean_log_prob"] >= max(s["mean_log_prob"] for s in settings.values()) - 0.5
    # Directions: greedy repeats itself more than pure sampling; a hotter temperature is less likely.
    assert r["greedy_vs_sampling_repetition"]["difference"] > 0
    assert settings["T=0.7"]["mean_log_prob"] > settings["T=1.3"]["mean_log_prob"]
    lo, hi = r["spearman_interval"]
    assert -1 <= lo <= r["spearman_logp_distinct2"] <= hi <= 1


def check_scaling(r: dict) -> None:
    assert len(r["params"]) == len(r["val_loss"]) == r["sizes"] >= 6
    assert r["params"] == sorted(r["params"])
    assert r["alpha"] >= 0 and r["c"] >= 0 and r["r_squared"] <= 1
    assert r["alpha_low"] <= r["alpha"] <= r["alpha_high"] and "bootstrap" in r["interval_method"]
    low, high = r["largest_interval"]
    assert low <= r["largest_predicted"] <= high
    assert r["chinchilla"]["alpha"] >= 0 and r["chinchilla"]["beta"] >= 0
    # Direction: the largest model ends below the smallest.
    assert r["val_loss"][-1] < r["val_loss"][0]


def check_attention_maps(r: dict) -> None:
    assert r["first_token_self_weight"] == pytest.approx(1.0)  # causal: the first token sees only itself
    assert r["gpt_upper_triangle_mass"] == 0.0
    assert r["bert_upper_triangle_mass"] > 0.0
    # The causal invariance: editing the last token changes no earlier output of the decoder, only its own;
    # the bidirectional encoder's earlier outputs move.
    assert r["causal_max_change_before_edit"] == 0.0 and r["causal_change_at_edit"] > 0.0
    assert r["bert_max_change_before_edit"] > 0.0


def check_tokenization(r: dict) -> None:
    tokenizers = r["tokenizers"]
    assert "char" in tokenizers and len(tokenizers) >= 2
    for t in tokenizers.values():
        assert t["bytes_per_token"] > 0 and t["bits_per_byte"] > 0 and t["bytes_per_s"] > 0
    assert tokenizers["char"]["bytes_per_token"] == pytest.approx(1.0, abs=0.1)
    # Directions: subwords hold more text per token and, at equal steps, predict it in fewer bits per byte.
    assert tokenizers["char"]["bytes_per_token"] < tokenizers["sp-1000"]["bytes_per_token"] < \
        tokenizers["sp-4000"]["bytes_per_token"]
    assert all(c["difference"] < 0 for c in r["vs_char"].values())


def check_families(r: dict) -> None:
    assert set(r["families"]) == {"t5", "gpt", "bert"} and r["tasks"]
    assert set(r["entries"]) == {"t5", "gpt", "bert", "t5-learned", "gpt-relative"}
    assert max(r["params"].values()) < 1.1 * min(r["params"].values())  # zoo compare matched the budget
    assert all(0 <= v <= 1 for v in r["metrics"].values())
    for record in [r["t5_vs_gpt_sort"], r["bert_vs_gpt_stdlib_docs"], *r["sort_longer"].values()]:
        paired(record)


def check_lora(r: dict) -> None:
    assert 0 < r["trainable"]["lora"] < r["trainable"]["full"] == r["trainable"]["from_scratch"]
    assert r["trainable"]["head_only"] < r["trainable"]["lora"]
    assert r["step_memory_bytes"]["LoRA"] < r["step_memory_bytes"]["full"]
    assert set(r["chosen"]) == {"full", "LoRA", "head only", "from scratch"}
    paired(r["lora_vs_full"])


def check_swiglu(r: dict) -> None:
    assert r["ffn_dim"]["SwiGLU"] == pytest.approx(2 / 3 * r["ffn_dim"]["GELU"], abs=8)  # ⅔ of 4d, rounded
    assert abs(r["params"]["SwiGLU"] / r["params"]["GELU"] - 1) < 0.01  # matched parameters
    assert r["seeds"] >= 3
    paired(r["swiglu_vs_gelu"])


def check_mup_transfer(r: dict) -> None:
    panels = {"SP + AdamW", "μP + AdamW", "μP + Muon"}
    assert r["seeds"] >= 3 and len(r["widths"]) >= 2 and r["base_width"] == r["widths"][0]
    assert r["widest"] == r["widths"][-1]
    assert set(r["regret"]) == set(r["regret_per_seed"]) == set(r["best_exponent"]) == panels
    # A regret is a loss at one grid rate minus the best on the grid: never negative.
    assert all(v >= 0 for seeds in r["regret_per_seed"].values() for v in seeds)
    for panel, exponents in (("SP + AdamW", r["lr_exponents"]), ("μP + AdamW", r["lr_exponents"]),
                             ("μP + Muon", r["muon_exponents"])):
        assert set(r["best_exponent"][panel].values()) <= set(exponents)
        assert len(r["val_loss"][panel]) == len(r["widths"]) * len(exponents)
    assert r["mup_stays_within_one_step"] == (r["max_shift"]["μP + AdamW"] <= 1)
    paired(r["mup_vs_sp_regret"])
    paired(r["muon_vs_adamw"])
    paired(r["muon_vs_frozen"])
    assert set(r["frozen_val_loss"]) == {str(w) for w in r["widths"]}


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
    "12_swiglu_vs_gelu": check_swiglu,
    "13_mup_transfer": check_mup_transfer,
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
