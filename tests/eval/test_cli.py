"""`zoo eval` through the console script's entry point: results JSON in the run's eval/ directory,
a table with chance levels, and one line for each kind of bad input, before any model work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.eval.helpers import make_checkpoint
from zoo.cli import main

pytest.importorskip("lm_eval")


def zoo(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "eval", *args])
    main()


def error_line(monkeypatch, capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        zoo(monkeypatch, *args)
    message = exit_info.value.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert isinstance(message, str) and message.startswith("zoo: error: zoo eval: ") and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run directory as zoo fit lays it out: runs/x/checkpoints/last.ckpt."""
    root = tmp_path_factory.mktemp("runs") / "x"
    make_checkpoint(root / "checkpoints" / "last.ckpt", "gpt")
    make_checkpoint(root / "checkpoints" / "bert.ckpt", "bert")
    return root


def test_zoo_eval_writes_results_beside_the_run_and_prints_a_table(run, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        zoo(monkeypatch, str(run / "checkpoints" / "last.ckpt"), "--tasks", "zoo_cloze,zoo_reverse", "--limit", "4",
            "--batch_size", "4", "--device", "cpu")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    files = list((run / "eval").glob("last_*.json"))
    assert len(files) == 1 and f"results written to {files[0]}" in out
    results = json.loads(files[0].read_text())
    assert set(results["results"]) == {"zoo_cloze", "zoo_reverse"}
    assert results["n-samples"]["zoo_cloze"]["effective"] == 4
    assert "| zoo_cloze | 0 | 4 | acc |" in out and "| 0.25 |" in out


def test_bad_input_is_one_line_before_any_model_work(run, monkeypatch, capsys, tmp_path):
    last, bert = str(run / "checkpoints" / "last.ckpt"), str(run / "checkpoints" / "bert.ckpt")
    message = error_line(monkeypatch, capsys, last, "--tasks", "zoo_clozee")
    assert "unknown task 'zoo_clozee' (did you mean zoo_cloze" in message
    message = error_line(monkeypatch, capsys, bert, "--tasks", "zoo_cloze,zoo_copy")
    assert "zoo_copy is a generation task" in message and "masked LM" in message
    message = error_line(monkeypatch, capsys, last, "--tasks", "zoo_cloze", "--num_fewshot", "65")
    assert "--num_fewshot 65 is larger than the 64 examples zoo_cloze" in message
    message = error_line(monkeypatch, capsys, last, "--tasks", "zoo_cloze", "--limit", "0")
    assert "--limit 0 must be > 0" in message

    bare = tmp_path / "checkpoints" / "bare.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["TextDataModule"]
    bare.parent.mkdir()
    torch.save(checkpoint, bare)
    message = error_line(monkeypatch, capsys, str(bare), "--tasks", "zoo_cloze")
    assert message == f"zoo: error: zoo eval: {bare}: holds no tokenizer; pass --tokenizer PATH"
    assert not (tmp_path / "eval").exists() or not any((tmp_path / "eval").iterdir())  # nothing half-written

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "lm_eval" else object())
    message = error_line(monkeypatch, capsys, last, "--tasks", "zoo_cloze")
    assert "pip install -e '.[eval]'" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_device_is_one_line(run, monkeypatch, capsys):
    message = error_line(monkeypatch, capsys, str(run / "checkpoints" / "last.ckpt"), "--tasks", "zoo_cloze",
                         "--device", "cuda")
    assert "--device cuda: no CUDA GPU is visible to this process" in message


def test_where_results_go(tmp_path):
    from zoo.eval.run import output_file

    (tmp_path / "runs" / "x" / "checkpoints").mkdir(parents=True)
    checkpoint = tmp_path / "runs" / "x" / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(b"")
    assert output_file(checkpoint) == tmp_path / "runs" / "x" / "eval" / "last.json"
    assert output_file(checkpoint, tmp_path / "out") == tmp_path / "out" / "last.json"
    assert output_file(checkpoint, tmp_path / "mine.json") == tmp_path / "mine.json"
    assert output_file(tmp_path / "runs" / "x") == tmp_path / "runs" / "x" / "eval" / "x.json"  # an export directory
