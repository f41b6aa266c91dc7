"""Fine-tuning through the real CLI, as the README tells a new user: pretrain on built-in data, then
instruction-tune from that checkpoint (its tokenizer found automatically) with the LoRA overlay stacked
on; zoo generate answers; zoo convert exports merged weights that transformers loads with equal
logits; a classifier fine-tunes from that export (its tokenizer travels along) and zoo predict writes
labels and probabilities; a LoRA target that matches nothing fails in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import run

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SMOKE = ["--config", str(CONFIGS / "debug" / "smoke.yaml")]
LORA = ["--config", str(CONFIGS / "finetune" / "lora.yaml")]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture
def workdir(tmp_path, cache_dir, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache_dir))
    return tmp_path


def fit(config: str, *extra: str):
    return run(["fit", "--config", str(CONFIGS / config), *SMOKE, *QUIET, *extra])


def zoo_main(monkeypatch, *argv: str) -> str | None:
    """``zoo ARGV`` through the console entry point; the one-line error it exits with, or None."""
    from zoo.cli import main

    monkeypatch.setattr(sys, "argv", ["zoo", *argv])
    try:
        main()
    except SystemExit as stop:
        return None if stop.code in (0, None) else str(stop.code)
    return None


def test_pretrain_fine_tune_with_lora_generate_export_and_classify_from_the_export(workdir, monkeypatch, capsys,
                                                                                caplog):
    transformers = pytest.importorskip("transformers")
    caplog.set_level("INFO")
    pretrain = fit("gpt_clm.yaml")
    pretrained = Path(pretrain.trainer.checkpoint_callback.dirpath) / "last.ckpt"

    tuned = fit("gpt_instruct.yaml", *LORA, "--model.init_args.pretrained", str(pretrained))
    assert tuned.datamodule.tokenizer.fingerprint == pretrain.datamodule.tokenizer.fingerprint  # found by itself
    assert tuned.model.hparams["adapter"]["target_modules"] == ["q_proj", "v_proj"]
    trainable = {n for n, p in tuned.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    assert "Trainable parameters:" in caplog.text and "lora on ['q_proj', 'v_proj']" in caplog.text
    last = Path(tuned.trainer.checkpoint_callback.dirpath) / "last.ckpt"

    capsys.readouterr()
    assert zoo_main(monkeypatch, "generate", str(last), "--prompt", "Which module documents this? Parse a URL.",
                    "--prompt", "Which part of the Python documentation is this from? The for statement.",
                    "--max-new-tokens", "4", "--jsonl") is None
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["prompt"][:5] for a in answers] == ["Which", "Which"]

    export = workdir / "hf"
    assert zoo_main(monkeypatch, "convert", str(last), str(export)) is None
    assert (export / "zoo_tokenizer.model").is_file()
    from zoo.adapters import merge_adapters
    from zoo.tasks import load_task

    merged = merge_adapters(load_task(str(last)).model.eval())
    hf = transformers.AutoModelForCausalLM.from_pretrained(export).eval()
    ids = torch.randint(7, merged.config.vocab_size, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, merged(ids), rtol=1e-4, atol=1e-4)

    classify = fit("gpt_classify.yaml", *LORA, "--model.init_args.pretrained", str(export))
    assert classify.datamodule.tokenizer.fingerprint == pretrain.datamodule.tokenizer.fingerprint
    classifier = Path(classify.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    assert torch.load(classifier, weights_only=True)["hyper_parameters"]["labels"] == classify.datamodule.labels
    out = workdir / "predictions.jsonl"
    run(["predict", "--config", str(CONFIGS / "gpt_classify.yaml"), *SMOKE, *QUIET, "--ckpt_path", str(classifier),
         "--prediction_writer.output_path", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(classify.datamodule.raw_examples("test"))
    assert set(records[0]["probabilities"]) == set(classify.datamodule.labels)
    assert records[0]["label"] in classify.datamodule.labels and records[0]["true_label"] in classify.datamodule.labels

    error = zoo_main(monkeypatch, "fit", "--config", str(CONFIGS / "gpt_classify.yaml"), *SMOKE,
                     "--model.init_args.pretrained", str(pretrained), "--model.init_args.adapter.target_modules",
                     "[query]")
    assert error is not None and "\n" not in error and "['query'] match no module" in error and "'q_proj'" in error
