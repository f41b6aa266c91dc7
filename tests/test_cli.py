"""The real CLI: every config runs, checkpoints round-trip, resume, DDP, and bad input fails in one line."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import one_line, run

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
SMOKE = REPO / "configs" / "debug" / "smoke.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One tokenizer/data cache for the module, so each config's tokenizer is trained once."""
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture
def workdir(tmp_path, cache_dir, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache_dir))
    return tmp_path


def zoo_subprocess(*args: str, cwd: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache_dir), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def smoke(config: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--config", str(SMOKE), *extra]


def test_configs_exist():
    names = {c.name for c in CONFIGS}
    assert {"bert_mlm.yaml", "gpt_clm.yaml", "llama_clm.yaml", "t5_span.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_every_config_trains_through_the_cli(workdir, config):
    cli = run(["fit", *smoke(config)])
    assert cli.trainer.global_step == 4
    ckpt_dir = Path(cli.trainer.checkpoint_callback.dirpath)
    assert ckpt_dir.is_relative_to(workdir)
    assert (ckpt_dir / "last.ckpt").is_file()
    assert Path(cli.trainer.checkpoint_callback.best_model_path).is_file()
    checkpoint = torch.load(ckpt_dir / "last.ckpt", weights_only=True)  # plain hyper-parameters
    assert checkpoint["hyper_parameters"]["config"]["vocab_size"] == cli.datamodule.vocab_size
    metrics_files = list((workdir / "runs" / config.stem / "version_0").glob("metrics.csv"))
    assert metrics_files
    with open(metrics_files[0]) as f:
        rows = list(csv.DictReader(f))
    val_losses = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    assert len(val_losses) == 2 and all(v == v for v in val_losses)  # validated twice, finite


def test_validate_resume_and_second_run_in_same_directory(workdir):
    gpt = REPO / "configs" / "gpt_clm.yaml"
    fit = run(["fit", *smoke(gpt)])
    last = Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    trained_val = float(fit.trainer.callback_metrics["val_loss"])

    validate = run(["validate", *smoke(gpt), "--ckpt_path", str(last)])
    assert float(validate.trainer.callback_metrics["val_loss"]) == pytest.approx(trained_val, rel=1e-4)

    resumed = run(["fit", *smoke(gpt, "--trainer.max_steps", "6"), "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 6  # continued from step 4, not from scratch
    assert torch.load(last, weights_only=True)["global_step"] == 6


def test_ckpt_path_last_takes_the_newest_run_of_the_name(workdir):
    """A fresh second run of the same config gets its own version directory; `--ckpt_path last` resumes
    the newer one, in its own directory."""
    gpt = REPO / "configs" / "gpt_clm.yaml"
    first = run(["fit", *smoke(gpt)])
    second = run(["fit", *smoke(gpt, "--trainer.max_steps", "6")])  # fresh, not resumed
    first_dir, second_dir = (Path(c.trainer.checkpoint_callback.dirpath) for c in (first, second))
    assert first_dir != second_dir and second_dir.parent.name == "version_1"
    assert torch.load(first_dir / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = run(["fit", *smoke(gpt, "--trainer.max_steps", "7"), "--ckpt_path", "last"])
    assert Path(resumed.config["fit"]["ckpt_path"]).resolve().parent == second_dir.resolve()
    assert resumed.trainer.global_step == 7
    assert torch.load(second_dir / "last.ckpt", weights_only=True)["global_step"] == 7  # kept writing there
    assert torch.load(first_dir / "last.ckpt", weights_only=True)["global_step"] == 4


def test_validate_with_a_checkpoint_reads_its_tokenizer(workdir, cache_dir):
    """A checkpoint records its tokenizer; `--ckpt_path` uses it even when the data settings would
    train another (another tokenizer given explicitly is refused: tests/test_checkpoints.py)."""
    gpt = REPO / "configs" / "gpt_clm.yaml"
    fit = run(["fit", *smoke(gpt)])
    last = Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    result = zoo_subprocess("validate", *smoke(gpt, "--data.init_args.vocab_size", "1100"), "--ckpt_path", str(last),
                            cwd=workdir, cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_loss" in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_ddp_two_cpu_processes(workdir, cache_dir):
    """`strategy=ddp` inside pytest would re-run pytest in the child, so run the CLI as a subprocess."""
    gpt = REPO / "configs" / "gpt_clm.yaml"
    run(["fit", *smoke(gpt), "--trainer.max_steps", "1"])  # build the tokenizer cache once, in-process
    result = zoo_subprocess(
        "fit", *smoke(gpt, "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                      "--checkpoint.dirpath", "ddp_ckpt"),
        cwd=workdir, cache_dir=cache_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in (result.stdout + result.stderr) or "MEMBER: 2/2" in (result.stdout + result.stderr)
    assert torch.load(workdir / "ddp_ckpt" / "last.ckpt", weights_only=True)["global_step"] == 4


BAD_INPUTS = {
    "embed_dim": (["--model.init_args.config.embed_dim", "30"], "embed_dim=30 must be divisible by num_heads=4"),
    "num_kv_heads": (["--model.init_args.config.num_kv_heads", "3"], "num_heads=4 must be divisible by num_kv_heads=3"),
    "norm": (["--model.init_args.config.norm", "batchnorm"], "config.norm"),
    "activation": (["--model.init_args.config.activation", "tanh"], "config.activation"),
    "position": (["--model.init_args.config.position", "absolute"], "config.position"),
    "missing_file": (["--data.init_args.data_files", "no_such_file.txt"], "no_such_file.txt"),
    "learned_table": (["--model.init_args.config.max_seq_len", "16"], "max_seq_len=16"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_in_one_line_before_training(workdir, case):
    args, expected = BAD_INPUTS[case]
    with pytest.raises(Exception) as raised:
        run(["fit", *smoke(REPO / "configs" / "gpt_clm.yaml", *args)])
    message = one_line(raised.value)
    assert expected in message and "\n" not in message
    assert not (workdir / "runs" / "gpt_clm" / "checkpoints").exists()  # nothing trained


def test_console_script_prints_one_line_not_a_traceback(workdir, cache_dir):
    args, expected = BAD_INPUTS["embed_dim"]
    result = zoo_subprocess("fit", *smoke(REPO / "configs" / "gpt_clm.yaml", *args), cwd=workdir, cache_dir=cache_dir)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"zoo: error: GPTConfig: {expected} (or set head_dim)"
    assert "Traceback" not in result.stderr


def test_help_and_print_config(workdir, cache_dir):
    result = zoo_subprocess("fit", "--config", str(REPO / "configs" / "llama_clm.yaml"), "--print_config",
                            cwd=workdir, cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "num_kv_heads: 2" in result.stdout and "class_path: zoo.tasks.CausalLM" in result.stdout
    top = zoo_subprocess("--help", cwd=workdir, cache_dir=cache_dir)
    assert top.returncode == 0
    assert all(f"  {command} " in top.stdout for command in ("fit", "generate", "convert", "compare", "eval"))
    help_result = zoo_subprocess("fit", "--model.help", "zoo.tasks.CausalLM", cwd=workdir, cache_dir=cache_dir)
    assert help_result.returncode == 0
    assert "num_kv_heads" in help_result.stdout


@pytest.mark.parametrize("config", ["gpt_clm", "bert_mlm"])
def test_predict_scores_every_validation_sequence(workdir, config):
    path = REPO / "configs" / f"{config}.yaml"
    fit = run(["fit", *smoke(path)])
    last = str(Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt")
    run(["predict", *smoke(path), "--ckpt_path", last, "--prediction_writer.output_path", "scores.jsonl"])
    rows = [json.loads(line) for line in (workdir / "scores.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(len(fit.datamodule._tokenized("validation"))))
    # Token-weighted, the per-sequence losses are the validation loss over the whole split.
    validate = run(["validate", *smoke(path, "--trainer.limit_val_batches", "1.0"), "--ckpt_path", last])
    tokens = sum(r["num_tokens"] for r in rows)
    mean = sum(r["loss"] * r["num_tokens"] for r in rows) / tokens
    if config == "gpt_clm":  # every sequence scores as many tokens, so the batch means weigh alike
        assert mean == pytest.approx(float(validate.trainer.callback_metrics["val_loss"]), rel=1e-4)
    assert mean == pytest.approx(math.log(float(validate.trainer.callback_metrics["val_perplexity"])), rel=1e-4)
