"""FSDP through Lightning on CPU: `configs/scale/fsdp.yaml` (``zoo.strategies.FSDP2``, FSDP2's
``fully_shard`` per layer) trains with 2 gloo processes, writes one full checkpoint that
``zoo generate`` and ``zoo convert`` open, and resumes from it, optimizer state included.
Subprocesses, as a user runs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
ZOO = str(Path(sys.executable).parent / "zoo")
FIT = [ZOO, "fit", "--config", "configs/gpt_clm.yaml", "--config", "configs/debug/smoke.yaml",
       "--config", "configs/scale/fsdp.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "2"]


def run(args: list[str]) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def test_fsdp_on_cpu_trains_checkpoints_opens_and_resumes(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    where = ["--checkpoint.dirpath", str(checkpoints), "--trainer.default_root_dir", str(tmp_path)]
    output = run([*FIT, *where])
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    last = checkpoints / "last.ckpt"
    assert last.is_file()  # one full file gathered on rank 0, not a directory of shards
    saved = torch.load(last, weights_only=False, map_location="cpu")
    assert saved["global_step"] == 4
    assert saved["state_dict"]["model.embed_tokens.weight"].shape == (1000, 32)  # whole, not a shard

    completion = run([ZOO, "generate", str(last), "--prompt", "The list", "--max-new-tokens", "5", "--device", "cpu"])
    assert completion.strip()
    if importlib.util.find_spec("transformers") is not None:  # the hf extra
        run([ZOO, "convert", str(last), str(tmp_path / "hf")])
        assert (tmp_path / "hf" / "config.json").is_file()

    output = run([*FIT, *where, "--trainer.max_steps", "6", "--ckpt_path", str(last)])
    assert "Restored all states" in output
    resumed = torch.load(last, weights_only=False, map_location="cpu")
    assert resumed["global_step"] == 6
    steps = {float(state["step"]) for state in resumed["optimizer_states"][0]["state"].values()}
    assert steps == {6.0}  # AdamW's moments carried on from step 4, not restarted
