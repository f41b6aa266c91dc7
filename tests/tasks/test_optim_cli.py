"""Muon and μP through the real CLI: ``configs/optim/muon.yaml`` stacks onto any config, its state is
in the checkpoint and a resumed run carries it on; μP is two config fields; bad input fails in one
line before anything trains. The slow ones: every config with Muon, and Muon under bf16-mixed,
gradient clipping and ``torch.compile``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import one_line, run

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "debug" / "smoke.yaml"
MUON = REPO / "configs" / "optim" / "muon.yaml"
GPT = REPO / "configs" / "gpt_clm.yaml"
LM_CONFIGS = ["gpt_clm", "llama_clm", "bert_mlm", "t5_span"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture
def workdir(tmp_path, cache_dir, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache_dir))
    return tmp_path


def fit(config: Path, *extra: str, muon: bool = True) -> list[str]:
    overlay = ["--config", str(MUON)] if muon else []
    return ["fit", "--config", str(config), *overlay, "--config", str(SMOKE), *QUIET, *extra]


def optimizer_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)["optimizer_states"][0]


def test_muon_overlay_trains_checkpoints_and_resumes(workdir):
    cli = run(fit(GPT, "--checkpoint.dirpath", "ckpt"))
    assert type(cli.model.optimizers().optimizer).__name__ == "MuonWithAdamW"
    saved = optimizer_state(workdir / "ckpt" / "last.ckpt")
    kinds = {g["name"]: (g["optimizer"], g["initial_lr"]) for g in saved["param_groups"]}
    assert kinds == {"hidden": ("muon", 0.02), "vector": ("adamw", 1e-3)}  # the overlay's rate; gpt_clm's lr
    assert sum("momentum_buffer" in s for s in saved["state"].values()) == 6  # q, k, v, out, up, down of 1 layer
    # Resumed: the momentum carries on, the AdamW moments count on from step 4.
    run(fit(GPT, "--checkpoint.dirpath", "ckpt", "--trainer.max_steps", "6", "--ckpt_path", "last"))
    resumed = optimizer_state(workdir / "ckpt" / "last.ckpt")
    assert {float(s["step"]) for s in resumed["state"].values() if "step" in s} == {6.0}
    assert all(not torch.equal(resumed["state"][i]["momentum_buffer"], s["momentum_buffer"])
               for i, s in saved["state"].items() if "momentum_buffer" in s)


def test_mup_is_two_config_fields(workdir):
    cli = run(fit(GPT, "--model.init_args.config.parametrization", "mup", "--model.init_args.config.base_width",
                  "16", "--checkpoint.dirpath", "ckpt", muon=False))
    config = cli.model.config
    assert (config.parametrization, config.base_width, config.embed_dim) == ("mup", 16, 32)
    groups = {g["name"]: g["initial_lr"] for g in optimizer_state(workdir / "ckpt" / "last.ckpt")["param_groups"]}
    assert groups["hidden"] == pytest.approx(1e-3 / 2) and groups["vector"] == 1e-3
    saved = torch.load(workdir / "ckpt" / "last.ckpt", weights_only=True)["hyper_parameters"]["config"]
    assert (saved["parametrization"], saved["base_width"]) == ("mup", 16)


BAD_INPUTS = {
    "mup_without_base_width": (["--model.init_args.config.parametrization", "mup"],
                               "parametrization='mup' needs base_width"),
    "base_width_too_large": (["--model.init_args.config.parametrization", "mup",
                              "--model.init_args.config.base_width", "64"],
                             "base_width=64 is larger than embed_dim=32"),
    "mup_rule": (["--config", str(MUON), "--model.init_args.muon.adjust_lr_fn", "match_rms_adamw",
                  "--model.init_args.config.parametrization", "mup", "--model.init_args.config.base_width", "16"],
                 "parametrization='mup' has no rule for Muon with adjust_lr_fn='match_rms_adamw'"),
    "muon_field": (["--config", str(MUON), "--model.init_args.muon.lr", "-1"], "muon: lr=-1"),
    "optimizer_name": (["--model.init_args.optimizer", "sgd"], "optimizer"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_in_one_line_before_training(workdir, case):
    args, expected = BAD_INPUTS[case]
    with pytest.raises(Exception) as raised:
        run(fit(GPT, *args, muon=False))
    message = one_line(raised.value)
    assert expected in message and "\n" not in message, message
    assert not (workdir / "runs").exists()  # nothing trained


@pytest.mark.slow
@pytest.mark.parametrize("name", LM_CONFIGS)
def test_every_pretraining_config_trains_with_muon(workdir, name):
    cli = run(fit(REPO / "configs" / f"{name}.yaml", "--checkpoint.dirpath", "ckpt"))
    assert cli.trainer.global_step == 4
    assert any("momentum_buffer" in s for s in optimizer_state(workdir / "ckpt" / "last.ckpt")["state"].values())


@pytest.mark.slow
def test_muon_with_bf16_clipping_and_compile(workdir, cache_dir):
    """Compiled stacks, bf16 autocast and a clipped gradient norm, as a user runs it (a subprocess:
    inductor's compiled code is per process)."""
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache_dir), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    args = fit(GPT, "--compile.enabled", "true", "--trainer.precision", "bf16-mixed",
               "--trainer.gradient_clip_val", "0.5", "--checkpoint.dirpath", "ckpt")
    result = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=workdir, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(workdir / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())
    assert sum("momentum_buffer" in s for s in saved["optimizer_states"][0]["state"].values()) == 6
