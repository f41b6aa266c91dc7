"""``zoo generate`` on real checkpoints: smoke runs of the shipped configs on the built-in corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import main as zoo_main
from zoo.cli import run
from zoo.commands.generate import main
from zoo.data.tokenizers import load_tokenizer
from zoo.generation import generate
from zoo.tasks import load_task

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "debug" / "smoke.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """``last.ckpt`` of a 4-step smoke run per family, plus one with a different tokenizer."""
    root = tmp_path_factory.mktemp("generate")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("ZOO_CACHE_DIR", str(root / "cache"))
    runs = {"gpt": ("gpt_clm", []), "t5": ("t5_span", []), "bert": ("bert_mlm", []),
            "gpt_other_vocab": ("gpt_clm", ["--data.init_args.vocab_size", "900"])}
    paths = {}
    try:
        for name, (config, extra) in runs.items():
            cli = run(["fit", "--config", str(REPO / "configs" / f"{config}.yaml"), "--config", str(SMOKE),
                       "--checkpoint.dirpath", f"{name}_ckpt", *extra])
            paths[name] = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    finally:
        mp.undo()
    return paths


def tokenizer_of(checkpoint: Path):
    return load_tokenizer(torch.load(checkpoint, weights_only=True)["TextDataModule"]["tokenizer_file"])


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_greedy_completions_equal_the_python_api(checkpoints, capsys, family):
    ckpt = checkpoints[family]
    prompts = ["The list type", "Return a new dictionary"]
    assert main([str(ckpt), *(a for p in prompts for a in ("--prompt", p)), "--max-new-tokens", "6", "--jsonl"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["prompt"] for p in printed] == prompts

    tokenizer, model = tokenizer_of(ckpt), load_task(str(ckpt)).model
    for prompt, row in zip(prompts, printed, strict=True):
        ids = tokenizer.encode(prompt) + ([tokenizer.eos_id] if family == "t5" else [])
        out = generate(model, torch.tensor([ids]), max_new_tokens=6, eos_token_id=tokenizer.eos_id,
                       pad_token_id=tokenizer.pad_id)
        new = out[0, len(ids):] if family == "gpt" else out[0, 1:]
        new = new.tolist()
        new = new[: new.index(tokenizer.eos_id)] if tokenizer.eos_id in new else new
        assert row["completion"] == tokenizer.decode(new)


def test_sampling_from_a_prompts_file_is_seeded(checkpoints, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The list type\n\nimport os\n", encoding="utf-8")
    args = [str(checkpoints["gpt"]), "--prompts-file", str(prompts), "--max-new-tokens", "8", "--do-sample",
            "--top-p", "0.9", "--temperature", "1.5"]
    outputs = []
    for seed in ("1", "1", "2"):
        main([*args, "--seed", seed])
        outputs.append(capsys.readouterr().out.splitlines())
    assert len(outputs[0]) == 2  # blank lines are not prompts
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]


def test_fill_mask_prints_top_k_candidates_per_mask(checkpoints, capsys):
    ckpt = checkpoints["bert"]
    assert main([str(ckpt), "--prompt", "Return the [MASK] of a [MASK].", "--top-k", "3", "--jsonl"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(record["masks"]) == 2
    for candidates in record["masks"]:
        probs = [c["probability"] for c in candidates]
        assert len(candidates) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


@pytest.mark.parametrize("args, words", [
    (["--prompt", "x", "--top-p", "1.5"], ["top_p=1.5", "(0, 1]"]),
    (["--prompt", "x", "--temperature", "-1", "--do-sample"], ["temperature=-1.0", "> 0"]),
    (["--prompt", "x", "--num-beams", "3", "--do-sample"], ["num_beams=3 with do_sample=True"]),
    (["--prompt", "x", "--max-new-tokens", "200"], ["max_new_tokens=200", "max_seq_len"]),
    (["--prompts-file", "missing.txt"], ["missing.txt"]),
    ([], ["no prompts"]),
])
def test_bad_input_fails_in_one_line(checkpoints, args, words):
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        main([str(checkpoints["gpt"]), *args])
    message = str(error.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_tokenizer_that_does_not_match_the_checkpoint_is_refused(checkpoints, monkeypatch):
    other = torch.load(checkpoints["gpt_other_vocab"], weights_only=True)["TextDataModule"]["tokenizer_file"]
    monkeypatch.setattr(sys, "argv", ["zoo", "generate", str(checkpoints["gpt"]), "--tokenizer", other,
                                      "--prompt", "The list type"])
    with pytest.raises(SystemExit) as exit_info:
        zoo_main()
    message = str(exit_info.value)
    assert message.startswith(f"zoo: error: zoo generate: {checkpoints['gpt']}: trained with another tokenizer")
    assert f"leave --tokenizer unset to use the one the checkpoint carries (tried {other})" in message
    assert "\n" not in message
