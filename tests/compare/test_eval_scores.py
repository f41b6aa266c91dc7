"""A study's ``eval:`` tasks: each lm run's final weights scored through ``zoo.eval`` (lm-eval), the
scores compared between entries like any metric (``<task>/<metric>`` columns with paired intervals),
scored once per request, and every mistake in the request refused in one line before anything trains."""

from __future__ import annotations

import json

import pytest

from zoo.commands.compare import main
from zoo.compare import load_comparison, study_settings

from .conftest import write_study
from .test_verdicts import TINY_LM, lm_study, no_training  # noqa: F401  (no_training is a fixture)

pytest.importorskip("lm_eval")


# ---------------------------------------------------------------------------------------------
# Bad input: one line, before anything trains


@pytest.mark.parametrize("changes, words", [
    ({"eval": {"tasks": ["zoo_clozee"]}}, ["eval: unknown task 'zoo_clozee' (did you mean zoo_cloze", "local tasks:"]),
    ({"eval": {"tasks": []}}, ["eval.tasks=[] must be a non-empty list of task names"]),
    ({"eval": {"tasks": ["zoo_cloze"], "limit": 0}}, ["eval.limit=0 must be > 0"]),
    ({"eval": {"tasks": ["zoo_cloze"], "limit": -5}}, ["eval.limit=-5 must be > 0"]),
    ({"eval": {"tasks": ["zoo_cloze"], "limit": "many"}}, ["eval.limit='many' must be > 0"]),
    ({"eval": {"tasks": ["zoo_cloze"], "num_fewshot": -1}}, ["eval.num_fewshot=-1 must be an integer >= 0"]),
    ({"eval": {"tasks": ["zoo_cloze"], "batch_size": 0}}, ["eval.batch_size=0 must be a positive integer"]),
    ({"eval": {"tasks": ["zoo_cloze"], "shots": 2}}, ["eval: unknown key 'shots'"]),
    ({"eval": {"tasks": ["zoo_cloze"], "metrics": ["zoo_cloze/acc"]}}, ["eval.metrics is filled in from the tasks"]),
    ({"eval": {"tasks": ["zoo_cloze"], "num_fewshot": 100000}}, ["eval: num_fewshot 100000 is larger than the"]),
    ({"entries": [{"name": "base", "family": "bert"}, {"name": "same", "family": "bert"}],
      "eval": {"tasks": ["zoo_copy"]}}, ["eval: zoo_copy is a generation task", "bert model is a masked LM"]),
    ({"eval": ["zoo_cloze"], "smallest_effect": {"zoo_cloz/acc": 0.01}},
     ["smallest_effect: 'zoo_cloz/acc' is not a score of the study's eval tasks", "'zoo_cloze/acc'"]),
    ({"smallest_effect": {"zoo_cloze/acc": 0.01}}, ["smallest_effect: 'zoo_cloze/acc' is not a score", "add eval:"]),
    ({"tune": {"metric": "zoo_cloze/acc"}, "train": {"lr": [1.0e-3, 2.0e-3]}, "eval": {"tasks": ["zoo_cloze"]}},
     ["tune.metric='zoo_cloze/acc': grids are chosen on validation metrics"]),
])
def test_bad_eval_requests_fail_in_one_line(tmp_path, no_training, changes, words):  # noqa: F811
    config = lm_study(tmp_path / "bad.yaml", **changes)
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(tmp_path / "out")])
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert not (tmp_path / "out").exists()


def test_eval_on_a_study_without_an_lm_task_fails_in_one_line(tmp_path, no_training):  # noqa: F811
    config = write_study(tmp_path / "seq2seq.yaml", eval={"tasks": ["zoo_cloze"]})  # the tiny reverse task only
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(tmp_path / "out")])
    message = str(error.value)
    assert "\n" not in message and "eval: lm-eval tasks score language models, and the study trains none" in message
    assert "'reverse (seq2seq)'" in message and "add an lm task or drop eval" in message
    assert not (tmp_path / "out").exists()


def test_the_eval_request_names_its_metrics_and_their_smallest_effects(tmp_path):
    config = lm_study(tmp_path / "ok.yaml", eval=["zoo_cloze", "zoo_next_sentence"],
                      smallest_effect={"zoo_next_sentence/acc": 0.02})
    comparison = load_comparison(config)
    assert comparison.eval.tasks == ["zoo_cloze", "zoo_next_sentence"] and comparison.eval.limit is None
    assert set(comparison.eval.metrics) >= {"zoo_cloze/acc", "zoo_next_sentence/acc"}
    effects = study_settings(comparison)["smallest_effect"]
    assert effects["zoo_cloze/acc"] == 0.005 and effects["zoo_next_sentence/acc"] == 0.02
    assert study_settings(load_comparison(lm_study(tmp_path / "none.yaml")))["eval"] is None


# ---------------------------------------------------------------------------------------------
# End to end: a real study, scored once


@pytest.mark.slow
def test_a_studys_eval_task_scores_enter_the_paired_tables_and_are_scored_once(tmp_path, capsys):
    """Two gpt entries (one at a learning rate that learns nothing), 3 seeds, scored on 40 zoo_cloze
    items each: the lm table carries zoo_cloze/acc for every run, with a paired interval against the
    baseline; running the study again trains nothing and scores nothing (scores.json untouched)."""
    config = lm_study(
        tmp_path / "eval.yaml",
        entries=[{"name": "base", "family": "gpt"}, {"name": "frozen", "family": "gpt", "train": {"lr": 1.0e-7}}],
        tasks=[TINY_LM], eval={"tasks": ["zoo_cloze"], "limit": 40, "batch_size": 16},
        train={"max_steps": 6, "batch_size": 8, "val_every": 3, "warmup_steps": 1})
    out = tmp_path / "out"
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())
    (table,) = summary["tables"]
    assert "zoo_cloze/acc" in table["metrics"]
    assert summary["eval"]["tasks"] == ["zoo_cloze"] and summary["eval"]["limit"] == 40
    runs = [r for r in summary["runs"] if r["task"] == "lm"]
    assert len(runs) == 6
    for run in runs:
        accuracy = run["metrics"]["zoo_cloze/acc"]
        assert 0.0 <= accuracy <= 1.0
        record = json.loads((out / "runs" / "lm" / run["entry"] / f"seed{run['seed']}" / "eval" / "scores.json")
                            .read_text())
        assert record["scores"]["zoo_cloze/acc"] == accuracy
        assert record["request"] == {"tasks": ["zoo_cloze"], "limit": 40, "num_fewshot": None, "batch_size": 16}
        lm_eval_file = out / "runs" / "lm" / run["entry"] / f"seed{run['seed']}" / "eval" / record["results"]
        assert json.loads(lm_eval_file.read_text())["n-samples"]["zoo_cloze"]["effective"] == 40
    for row in table["rows"]:
        assert len(row["values"]["zoo_cloze/acc"]) == 3  # one per seed
    paired = table["comparisons"][0]["metrics"]["zoo_cloze/acc"]["frozen"]
    assert paired["n"] == 3 and paired["ci_low"] <= paired["difference"] <= paired["ci_high"]
    assert paired["smallest_effect"] == 0.005 and paired["higher_is_better"] is True
    assert paired["verdict"]
    report = (out / "results.md").read_text()
    assert "zoo_cloze accuracy" in report
    printed = capsys.readouterr().out
    assert "zoo_cloze accuracy" in printed

    scores = sorted((out / "runs").rglob("scores.json"))
    assert len(scores) == 6
    before = {path: path.stat().st_mtime_ns for path in scores}
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    assert "6 of 6 run(s) finished earlier: skipped" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in scores} == before
    assert json.loads((out / "results.json").read_text())["tables"][0]["comparisons"] == table["comparisons"]


def test_a_run_is_scored_again_only_when_its_request_changes(tmp_path):
    from zoo.compare.job import EVAL_FILE, SCORES_FILE, read_scores

    assert read_scores(tmp_path) == {}  # a run the study does not score
    request = {"tasks": ["zoo_cloze"], "limit": 40, "num_fewshot": None, "batch_size": 16}
    (tmp_path / EVAL_FILE).write_text(json.dumps(request))
    assert read_scores(tmp_path) is None  # not scored yet
    (tmp_path / SCORES_FILE).parent.mkdir()
    (tmp_path / SCORES_FILE).write_text(json.dumps({"request": request, "scores": {"zoo_cloze/acc": 0.3}}))
    assert read_scores(tmp_path) == {"zoo_cloze/acc": 0.3}
    (tmp_path / EVAL_FILE).write_text(json.dumps({**request, "limit": 80}))
    assert read_scores(tmp_path) is None  # another request: its old scores are not reported
