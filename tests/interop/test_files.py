"""Directories: zoo -> save_pretrained -> AutoModel / from_hf, and HF-written files -> from_hf."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.hf import from_hf, save_pretrained

from .helpers import (
    AUTO_CLASSES,
    CASES,
    TOLERANCE,
    assert_same_state,
    batch,
    build,
    hf_logits,
    max_diff,
    transformers,
    zoo_logits,
)

safetensors = pytest.importorskip("safetensors.torch")  # with transformers, in the hf extra

# One case per architecture, plus the untied T5 (its head survives save_pretrained only untied).
FILE_CASES = [("bert", "3heads-gelu_new-untied-3types"), ("gpt2", "4heads-tied"), ("llama", "gqa2-untied"),
              ("t5", "v1.1-gated_gelu-untied-d_kv16-8buckets"), ("t5", "v1.0-relu-tied-scaled")]


@pytest.mark.parametrize("arch,name", FILE_CASES)
def test_zoo_save_pretrained_loads_in_transformers_and_back(tmp_path, arch, name):
    model = from_hf(build(arch, name))
    save_pretrained(model, tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    inputs = batch(arch, None, padded=True)
    expected = zoo_logits(model, arch, inputs)

    loaded = getattr(transformers, AUTO_CLASSES[arch]).from_pretrained(tmp_path).eval()
    assert max_diff(hf_logits(loaded, inputs), expected, arch, inputs) <= TOLERANCE

    again = from_hf(tmp_path)
    assert not again.training
    assert again.config.architecture() == model.config.architecture()
    assert_same_state(model.state_dict(), again.state_dict())


@pytest.mark.parametrize("arch,name", CASES)
def test_from_hf_reads_transformers_save_pretrained(tmp_path, arch, name):
    """Files written by transformers itself: tied tensors stored once, head class names."""
    hf = build(arch, name)
    hf.save_pretrained(tmp_path)
    model = from_hf(str(tmp_path))
    inputs = batch(arch, hf.config, padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(model, arch, inputs), arch, inputs) <= TOLERANCE


def test_sharded_and_bin_weights(tmp_path):
    hf = build("llama", "gqa2-untied")
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    hf.config.save_pretrained(tmp_path)
    names = sorted(state)
    shards = {"model-1.safetensors": names[: len(names) // 2], "model-2.safetensors": names[len(names) // 2:]}
    for file, keys in shards.items():
        safetensors.save_file({k: state[k] for k in keys}, tmp_path / file)
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    inputs = batch("llama")
    expected = hf_logits(hf, inputs)
    assert max_diff(expected, zoo_logits(from_hf(tmp_path), "llama", inputs), "llama", inputs) <= TOLERANCE

    bin_dir = tmp_path / "bin"
    hf.config.save_pretrained(bin_dir)
    torch.save(state, bin_dir / "pytorch_model.bin")
    assert max_diff(expected, zoo_logits(from_hf(bin_dir), "llama", inputs), "llama", inputs) <= TOLERANCE


def test_original_gpt2_names_without_prefix(tmp_path):
    """The first GPT-2 files name tensors without the `transformer.` prefix of GPT2LMHeadModel."""
    hf = build("gpt2", "4heads-tied")
    hf.save_pretrained(tmp_path)
    state = safetensors.load_file(tmp_path / "model.safetensors")
    safetensors.save_file({k.removeprefix("transformer."): v for k, v in state.items()}, tmp_path / "model.safetensors")
    inputs = batch("gpt2")
    model = from_hf(tmp_path)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(model, "gpt2", inputs), "gpt2", inputs) <= TOLERANCE
