"""``config: {preset: llama}`` in a zoo fit YAML and on the command line: the preset gives the fields
left out, every given field wins, and the resolved config is what ``--print_config`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zoo.cli import run
from zoo.models import GPTConfig
from zoo.models.config import PRESETS

REPO = Path(__file__).resolve().parents[1]


def resolved_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit):
        run(["fit", *args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["config"]


def test_the_llama_yaml_names_the_preset_and_resolves_to_the_recipe(capsys):
    config = resolved_config(capsys, "--config", str(REPO / "configs" / "llama_clm.yaml"))
    assert all(config[k] == v for k, v in PRESETS["llama"].items())
    assert (config["embed_dim"], config["num_layers"], config["preset"]) == (128, 2, "llama")
    text = (REPO / "configs" / "llama_clm.yaml").read_text()
    assert "rmsnorm" not in text and "preset: llama" in text  # the recipe is named, not copied


def test_given_fields_win_over_the_preset_in_yaml_and_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"model": {"class_path": "zoo.tasks.CausalLM", "init_args": {
        "config": {"preset": "llama", "norm": "layernorm", "embed_dim": 64}}}}))
    config = resolved_config(capsys, "--config", str(path), "--model.init_args.config.bias", "true",
                             "--data", "zoo.data.TextDataModule")
    assert (config["norm"], config["bias"], config["embed_dim"]) == ("layernorm", True, 64)  # given: kept
    assert (config["activation"], config["position"], config["num_kv_heads"]) == ("swiglu", "rotary", 2)
    config = resolved_config(capsys, "--config", str(REPO / "configs" / "gpt_clm.yaml"),
                             "--model.init_args.config.preset", "llama")
    gpt = yaml.safe_load((REPO / "configs" / "gpt_clm.yaml").read_text())["model"]["init_args"]["config"]
    assert config["activation"] == "swiglu" and all(config[k] == v for k, v in gpt.items())


def test_the_resolved_config_builds_the_same_model_as_the_python_preset(capsys):
    config = resolved_config(capsys, "--config", str(REPO / "configs" / "llama_clm.yaml"))
    assert GPTConfig.from_dict(config) == GPTConfig.llama(embed_dim=128, num_layers=2)  # vocab and ids: linked


def test_zoo_fit_builds_the_preset_model_with_the_given_fields(tmp_path):
    cli = run(["fit", "--model", "zoo.tasks.InstructionLM", "--model.init_args.config.preset", "llama",
               "--model.init_args.config.embed_dim", "16", "--model.init_args.config.num_heads", "4",
               "--model.init_args.config.num_layers", "1", "--model.init_args.config.max_seq_len", "32",
               "--data", "zoo.data.InstructionDataModule", "--data.init_args.builtin", "copy",
               "--data.init_args.tokenizer", "char", "--data.init_args.max_seq_len", "32",
               "--data.init_args.synthetic", '{"train_size": 16, "val_size": 4, "test_size": 4, "max_len": 3}',
               "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false", "--run.dir", str(tmp_path)])
    config = cli.model.config
    assert (config.embed_dim, config.num_heads, config.num_kv_heads) == (16, 4, 2)  # given, given, preset
    assert (config.norm, config.activation, config.position, config.bias) == ("rmsnorm", "swiglu", "rotary", False)
    assert config.preset is None  # num_heads: 4 sets back the family default the preset changes (8)
