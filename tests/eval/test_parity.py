"""The zoo backend against lm-eval's own Hugging Face backend (`hf`) on the same model exported with
`zoo convert`: the same log-likelihood per request (within 1e-4) and the same task scores, for a
decoder (GPT-2 and LLaMA exports) and for T5 through `hf`'s seq2seq path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.eval.helpers import make_checkpoint
from zoo.commands.convert import main as convert

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from lm_eval.models.huggingface import HFLM  # noqa: E402

from zoo.eval.harness import ZooLM  # noqa: E402
from zoo.eval.run import evaluate, prepare, scores  # noqa: E402

TOLERANCE = 1e-4
# Every scoring request type: multiple choice, loglikelihood (greedy check too), rolling (three of
# the first six paragraphs run past max_seq_len=128 with the test tokenizer: several windows).
TASKS = {"zoo_cloze": 24, "zoo_last_word": 24, "zoo_paragraphs": 6}


def run_both(tmp_path: Path, family: str, backend: str) -> tuple[dict, dict]:
    checkpoint = make_checkpoint(tmp_path / f"{family}.ckpt", family, seed=3)
    assert convert([str(checkpoint), str(tmp_path / family)]) == 0
    zoo_lm = ZooLM(checkpoint=str(checkpoint), device="cpu", batch_size=8)
    hf_lm = HFLM(pretrained=str(tmp_path / family), backend=backend, device="cpu", batch_size=8)
    results = []
    for lm in (zoo_lm, hf_lm):
        manager, tasks = prepare(list(TASKS))
        results.append(lm_eval.simple_evaluate(
            model=lm, tasks=list(tasks.values()), limit=None, samples={t: list(range(n)) for t, n in TASKS.items()},
            log_samples=True, bootstrap_iters=0, task_manager=manager, random_seed=0, numpy_random_seed=0,
            torch_random_seed=0, fewshot_random_seed=0))
    return results[0], results[1]


def assert_same(ours: dict, theirs: dict) -> None:
    for row_a, row_b in zip(scores(ours), scores(theirs), strict=True):
        assert (row_a["task"], row_a["metric"]) == (row_b["task"], row_b["metric"])
        assert row_a["value"] == pytest.approx(row_b["value"], rel=1e-5, abs=1e-6), (row_a, row_b)
    for task in TASKS:
        a, b = ours["samples"][task], theirs["samples"][task]
        assert len(a) == len(b) == TASKS[task]
        for x, y in zip(a, b, strict=True):
            assert x["doc_id"] == y["doc_id"]
            for ra, rb in zip(x["resps"], y["resps"], strict=True):
                va, vb = ra[0], rb[0]
                if isinstance(va, (tuple, list)):  # (loglikelihood, is_greedy)
                    assert abs(va[0] - vb[0]) <= TOLERANCE, (task, va, vb)
                    assert va[1] == vb[1], (task, va, vb)
                else:  # a rolling log-likelihood
                    assert abs(va - vb) <= TOLERANCE * max(1.0, abs(vb) / 100), (task, va, vb)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_decoder_matches_lm_eval_hf_backend(tmp_path, family):
    assert_same(*run_both(tmp_path, family, "causal"))


def test_t5_matches_lm_eval_hf_seq2seq_backend(tmp_path):
    assert_same(*run_both(tmp_path, "t5", "seq2seq"))


def test_same_scores_through_zoo_evaluate(tmp_path):
    """`zoo.eval.run.evaluate` (what `zoo eval` runs) gives what lm-eval's own entry point gives."""
    checkpoint = make_checkpoint(tmp_path / "gpt.ckpt", "gpt", seed=4)
    lm = ZooLM(checkpoint=str(checkpoint), batch_size=8)
    ours = evaluate(lm, ["zoo_cloze"], limit=16, quiet=True, seed=0, bootstrap_iters=0)
    theirs = lm_eval.simple_evaluate(model=lm, tasks=list(prepare(["zoo_cloze"])[1].values()), limit=16,
                                     task_manager=prepare(["zoo_cloze"])[0], bootstrap_iters=0, random_seed=0,
                                     numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
    assert scores(ours) == scores(theirs)
