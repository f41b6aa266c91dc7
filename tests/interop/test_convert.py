"""`zoo convert` both ways, checkpoints that load with `load_task`, and `pretrained=` initial weights."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from zoo.commands.convert import main as convert
from zoo.hf import from_hf
from zoo.models import GPTConfig
from zoo.tasks import CausalLM, MaskedLM, Seq2SeqLM, load_task

from .helpers import (
    AUTO_CLASSES,
    TOLERANCE,
    assert_same_state,
    batch,
    build,
    hf_logits,
    max_diff,
    transformers,
    zoo_logits,
)

REPO = Path(__file__).resolve().parents[2]
TASKS = {"bert": MaskedLM, "gpt2": CausalLM, "llama": CausalLM, "t5": Seq2SeqLM}
ONE_PER_ARCH = [("bert", "4heads-gelu-tied"), ("gpt2", "3heads-gelu-untied"), ("llama", "gqa2-untied"),
                ("t5", "v1.1-gated_gelu-untied-d_kv16-8buckets")]


@pytest.mark.parametrize("arch,name", ONE_PER_ARCH)
def test_convert_hf_directory_to_checkpoint_and_back(tmp_path, arch, name):
    hf = build(arch, name)
    hf.save_pretrained(tmp_path / "hf")
    ckpt = tmp_path / "zoo.ckpt"
    assert convert([str(tmp_path / "hf"), str(ckpt)]) == 0

    checkpoint = torch.load(ckpt, weights_only=True)  # plain values only
    assert checkpoint["hyper_parameters"]["config"]["vocab_size"] == hf.config.vocab_size
    assert "pretrained" not in checkpoint["hyper_parameters"]
    task = load_task(str(ckpt))
    assert type(task) is TASKS[arch]
    assert type(TASKS[arch].load_from_checkpoint(ckpt)) is TASKS[arch]
    inputs = batch(arch, hf.config, padded=True)
    expected = hf_logits(hf, inputs)
    assert max_diff(expected, zoo_logits(task.model.eval(), arch, inputs), arch, inputs) <= TOLERANCE

    assert convert([str(ckpt), str(tmp_path / "back")]) == 0
    back = getattr(transformers, AUTO_CLASSES[arch]).from_pretrained(tmp_path / "back")
    assert_same_state(hf.state_dict(), back.state_dict())


def test_convert_checkpoint_written_by_lightning(tmp_path):
    task = CausalLM(GPTConfig.llama(vocab_size=100, embed_dim=32, num_layers=2, num_heads=4, num_kv_heads=2),
                    warmup_steps=1)
    batches = [{"input_ids": torch.randint(0, 100, (2, 12))} for _ in range(2)]
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(task, torch.utils.data.DataLoader(batches, batch_size=None))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert convert([str(tmp_path / "last.ckpt"), str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert type(hf).__name__ == "LlamaForCausalLM"
    inputs = batch("llama", padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(task.model.eval(), "llama", inputs), "llama",
                    inputs) <= TOLERANCE


def test_convert_refuses_to_overwrite_and_bad_sources(tmp_path):
    build("gpt2", "4heads-tied").save_pretrained(tmp_path / "hf")
    (tmp_path / "taken.ckpt").write_text("")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        convert([str(tmp_path / "hf"), str(tmp_path / "taken.ckpt")])
    assert convert([str(tmp_path / "hf"), str(tmp_path / "taken.ckpt"), "--overwrite"]) == 0
    with pytest.raises(FileNotFoundError, match="missing"):
        convert([str(tmp_path / "missing"), str(tmp_path / "out")])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"^zoo convert: .*junk.ckpt: not a checkpoint: not the zip archive"):
        convert([str(tmp_path / "junk.ckpt"), str(tmp_path / "out")])


@pytest.fixture
def llama_dir(tmp_path) -> Path:
    build("llama", "mqa-tied-head_dim16-bias-theta500").save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def test_pretrained_initialises_the_task_from_hf_directory_and_checkpoint(tmp_path, llama_dir):
    imported = from_hf(llama_dir)
    task = CausalLM(imported.config, pretrained=str(llama_dir))
    assert_same_state(imported.state_dict(), task.model.state_dict())
    assert "pretrained" not in task.hparams  # a reloaded run takes its weights from its own checkpoint

    assert convert([str(llama_dir), str(tmp_path / "zoo.ckpt")]) == 0
    # Training-time settings and special ids may differ from the pretrained config.
    config = GPTConfig(**{**imported.config.to_dict(), "dropout": 0.3, "pad_token_id": 7})
    again = CausalLM(config, pretrained=str(tmp_path / "zoo.ckpt"))
    assert_same_state(imported.state_dict(), again.model.state_dict())


def test_architecture_resolves_null_defaults():
    """`pretrained=` compares architectures: null fields and their resolved values build the same model."""
    implicit = GPTConfig(embed_dim=32, num_heads=4)
    explicit = GPTConfig(embed_dim=32, num_heads=4, ffn_dim=128, head_dim=8, num_kv_heads=4, rope_base=5.0)
    assert implicit.architecture() == explicit.architecture()  # rope_base is unused with learned positions
    assert implicit.architecture() != GPTConfig(embed_dim=32, num_heads=4, ffn_dim=64).architecture()


def test_pretrained_with_other_architecture_or_family_is_refused(llama_dir):
    config = from_hf(llama_dir).config
    with pytest.raises(ValueError, match=r"does not match the model config: num_layers: pretrained 2 vs config 3$"):
        CausalLM(GPTConfig(**{**config.to_dict(), "num_layers": 3}), pretrained=str(llama_dir))
    with pytest.raises(ValueError, match=r"vocab_size: pretrained 100 vs config 120 \(the data's tokenizer"):
        CausalLM(GPTConfig(**{**config.to_dict(), "vocab_size": 120}), pretrained=str(llama_dir))
    bert = from_hf(build("bert", "4heads-gelu-tied")).config
    with pytest.raises(ValueError, match="holds a GPTConfig model; MaskedLM needs a BertConfig"):
        MaskedLM(bert, pretrained=str(llama_dir))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        CausalLM(config, pretrained="nowhere.ckpt")


@pytest.mark.slow
def test_zoo_fit_and_validate_start_from_a_converted_directory(tmp_path, monkeypatch):
    """The documented workflow through the real CLI: train, convert to HF, validate from the HF directory."""
    from zoo.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    smoke = ["--config", str(REPO / "configs" / "gpt_clm.yaml"), "--config", str(REPO / "configs/debug/smoke.yaml"),
             "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"]
    fit = run(["fit", *smoke])
    last = Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    assert convert([str(last), str(tmp_path / "hf")]) == 0
    assert type(transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")).__name__ == "GPT2LMHeadModel"

    from_checkpoint = run(["validate", *smoke, "--ckpt_path", str(last)])
    from_hf_dir = run(["validate", *smoke, "--model.init_args.pretrained", str(tmp_path / "hf")])
    from_scratch = run(["validate", *smoke])
    expected = float(from_checkpoint.trainer.callback_metrics["val_loss"])
    assert float(from_hf_dir.trainer.callback_metrics["val_loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(from_scratch.trainer.callback_metrics["val_loss"]) != pytest.approx(expected, rel=1e-5)


def test_convert_help_names_every_architecture(capsys):
    from zoo.hf import ARCHITECTURES

    with pytest.raises(SystemExit):
        convert(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in ARCHITECTURES)
