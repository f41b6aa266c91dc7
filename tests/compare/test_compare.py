"""``zoo compare`` end to end: a tiny comparison writes its table, CSV and plot; a resumed one
skips finished runs; bad input fails in one line before anything trains; shipped configs plan."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

import zoo.compare
import zoo.compare.runner
from zoo.cli import main as zoo_main
from zoo.commands.compare import main
from zoo.compare import load_comparison, plan

from .conftest import TINY_REVERSE

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "configs" / "compare").glob("*.yaml"))


def write_config(path: Path, **changes) -> str:
    config = {
        "name": "tiny",
        "seeds": [0],
        "families": ["t5", "gpt"],
        "model": {"embed_dim": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        "tasks": [TINY_REVERSE],
        "train": {"max_steps": 4, "batch_size": 8, "val_every": 2, "warmup_steps": 1},
        **changes,
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although it should not have")

    monkeypatch.setattr(zoo.compare.runner, "train_run", fail)


def test_tiny_comparison_end_to_end_then_resume(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] t5 × reverse × seed 0" in printed and "[2/2] gpt × reverse × seed 0" in printed

    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["entry"], r["task"], r["seed"]) for r in rows] == [("t5", "reverse", "0"), ("gpt", "reverse", "0")]
    for row in rows:
        assert int(row["steps"]) == 4 and int(row["tokens"]) > 0 and float(row["flops"]) > 0
        assert float(row["peak_mem_mb"]) > 0 and float(row["train_time_s"]) > 0
        assert 0 <= float(row["val_exact_match"]) <= 1 and float(row["test_cer"]) >= 0
    table = (out / "results.md").read_text()
    assert "| entry | params | train tokens | train FLOPs | wall time (s) |" in table and "val exact match" in table
    assert "(plots/reverse.png)" in table
    assert "| t5 |" in table and "| gpt |" in table
    assert (out / "plots" / "reverse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [len(r["curve"]) for r in runs] == [2, 2]  # validated at steps 2 and 4
    assert runs[0]["curve"][0]["tokens"] < runs[0]["curve"][1]["tokens"]

    # Resume: nothing is trained again, and an interrupted comparison trains only what is missing.
    trained = []
    real_train_run = zoo.compare.runner.train_run
    monkeypatch.setattr(zoo.compare.runner, "train_run", lambda run, comparison: trained.append(run.key) or
                        real_train_run(run, comparison))
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    assert trained == [] and "done earlier, skipped" in capsys.readouterr().out
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][:40])  # the second run was cut off mid-write
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    assert trained == ["gpt|reverse|0"]
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "line 2" in warnings[0] and "trained again" in warnings[0]
    # The redone record was not glued to the torn line: the file holds two whole records, and a
    # third run finds both.
    assert [json.loads(line)["key"] for line in (out / "results.jsonl").read_text().splitlines()] == \
        ["t5|reverse|0", "gpt|reverse|0"]
    assert main(["--config", config, "--output-dir", str(out)]) == 0
    assert trained == ["gpt|reverse|0"] and "warning" not in capsys.readouterr().out
    # Changed settings are not mistaken for finished work.
    assert main(["--config", config, "--output-dir", str(out), "--set", "train.lr=0.002"]) == 0
    assert trained == ["gpt|reverse|0", "t5|reverse|0", "gpt|reverse|0"]


def test_every_family_runs_every_kind_of_task_it_can(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i}: some text about brackets and sorting" for i in range(300)))
    small = {"train_size": 32, "val_size": 8, "test_size": 8}
    config = write_config(
        tmp_path / "kinds.yaml",
        families=None,
        entries=[{"family": "t5"}, {"family": "gpt"}, {"family": "llama"},
                 {"family": "bert", "tasks": ["reverse", "brackets"]}],
        model={"embed_dim": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "dropout": 0.0},
        tasks=[TINY_REVERSE, {"type": "brackets", "max_len": 6, **small},
               {"type": "lm", "files": str(corpus), "tokenizer": "char", "block_len": 16, "val_blocks": 2,
                "test_blocks": 2, "val_fraction": 0.1, "test_fraction": 0.1}],
        train={"max_steps": 2, "batch_size": 4, "val_every": 2, "warmup_steps": 1},
    )
    records = zoo.compare.run_comparison(load_comparison(config, output_dir=str(tmp_path / "out")), log=lambda _: None)
    assert len(records) == 11
    for record in records:
        metrics = record["metrics"]
        if record["kind"] == "seq2seq":
            assert 0 <= metrics["test_exact_match"] <= 1 and metrics["test_cer"] >= 0
        elif record["kind"] == "classification":
            assert 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["test_macro_f1"] <= 1
        else:
            assert 0 < metrics["test_bpb"] < 20 and metrics["test_perplexity"] > 1
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert plots == ["brackets.png", "lm.png", "reverse.png"]


def test_token_budget_trains_every_entry_on_the_same_tokens(tmp_path):
    config = write_config(tmp_path / "tokens.yaml", budget={"tokens": 600})
    records = zoo.compare.run_comparison(load_comparison(config, output_dir=str(tmp_path / "out")), log=lambda _: None)
    for record in records:  # stops at the first batch that reaches the budget
        assert 600 <= record["tokens"] < 600 + 8 * 12  # a batch: 8 examples of at most 4 + 1 + 4 + 1 tokens
    assert records[0]["steps"] != 4  # the budget, not max_steps, ended training


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.mark.parametrize("changes, words", [
    ({"tasks": ["reverse", "palindromes"]}, ["unknown task 'palindromes'"]),
    ({"families": ["gpt", "gpt5"]}, ["unknown family 'gpt5'"]),
    ({"families": ["bert"], "tasks": [{"type": "addition", "max_len": 2}]},
     ["entry 'bert' cannot run task 'addition'", "as long as its source"]),
    ({"families": ["bert"], "tasks": [{"type": "lm", "files": "CORPUS", "tokenizer": "char"}]},
     ["entry 'bert' cannot run task 'lm'", "language modelling"]),
    ({"tasks": [{"type": "seq2seq", "files": "BAD_JSONL"}]}, ["bad.jsonl:1", "no field 'target'"]),
    ({"model": {"num_heads": 3}}, ["entry 't5' on task 'reverse'", "num_heads=3"]),
    ({"model": {"positoin": "rotary"}}, ["unknown field(s) ['positoin']"]),
    ({"trian": {}}, ["unknown key 'trian'"]),
    ({"budget": {"params": 10, "match": "num_layers"}}, ["off the target 10"]),
    ({"train": {"lr": "fast"}}, ["train.lr='fast' must be a number"]),
])
def test_bad_input_fails_in_one_line_before_training(tmp_path, no_training, changes, words):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of some text" for i in range(300)))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"source": "a", "answer": "b"}])
    text = json.dumps(changes).replace("CORPUS", str(corpus)).replace("BAD_JSONL", bad)
    config = write_config(tmp_path / "bad.yaml", **json.loads(text))
    with pytest.raises(ValueError) as error:
        main(["--config", config, "--output-dir", str(tmp_path / "out")])
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_zoo_cli_prints_the_error_as_one_line(tmp_path, monkeypatch, no_training):
    config = write_config(tmp_path / "bad.yaml", tasks=["palindromes"])
    monkeypatch.setattr(sys, "argv", ["zoo", "compare", "--config", config])
    with pytest.raises(SystemExit) as exit_info:
        zoo_main()
    assert str(exit_info.value).startswith("zoo: error: unknown task 'palindromes'")
    assert "\n" not in str(exit_info.value)


def test_variants_sweep_scale_and_overrides(tmp_path):
    config = write_config(
        tmp_path / "ablation.yaml", families=["gpt"], sweep={"position": ["learned", "rotary"]},
        variants=[{"name": "rmsnorm", "config": {"norm": "rmsnorm"}}], budget={"params": 20_000},
    )
    comparison = load_comparison(config, scale=2, overrides=["model.num_layers=2", "tasks.0.max_len=5"])
    assert [e.name for e in comparison.entries] == ["rmsnorm", "position=learned", "position=rotary"]
    assert comparison.entries[2].config == {"position": "rotary"}
    assert comparison.train.max_steps == 8 and comparison.budget.params == 40_000
    runs = plan(comparison)
    assert [r.config.num_layers for r in runs] == [2, 2, 2] and runs[0].config.norm == "rmsnorm"
    assert all(abs(r.params - 40_000) <= 4_000 for r in runs)
    assert comparison.tasks[0].max_len == 5

    two = write_config(tmp_path / "two.yaml", families=["gpt", "t5"], sweep={"activation": ["relu", "swiglu"]})
    assert [e.name for e in load_comparison(two).entries] == ["gpt/activation=relu", "gpt/activation=swiglu",
                                                              "t5/activation=relu", "t5/activation=swiglu"]


def test_exponents_read_as_numbers(tmp_path):
    path = tmp_path / "numbers.yaml"
    path.write_text("tasks: [copy]\nfamilies: [gpt]\ntrain: {lr: 1e-3}\nbudget: {params: 2e5}\n")
    comparison = load_comparison(path)
    assert comparison.train.lr == 0.001 and comparison.budget.params == 200_000


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_plan(path, capsys):
    comparison = load_comparison(path)
    runs = plan(comparison)
    assert runs and len({r.key for r in runs}) == len(runs)
    budget = comparison.budget
    if budget.params:
        assert all(abs(r.params - budget.params) <= budget.tolerance * budget.params for r in runs)


def test_shipped_configs_exist():
    assert {p.name for p in SHIPPED} >= {"seq2seq_families.yaml", "classification_families.yaml", "lm_ablations.yaml"}
