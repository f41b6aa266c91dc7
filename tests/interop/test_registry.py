"""zoo.hf's architecture modules and the family registry name the same Hugging Face classes, and
export picks among a family's classes by ``export_when``."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

import zoo.hf
from zoo.hf import ARCHITECTURES, SUPPORTED_CLASSES, export_architecture, hf_family
from zoo.models import GPT, GPTConfig
from zoo.models.registry import FAMILIES, Family

MODULES = sorted(p.stem for p in Path(zoo.hf.__file__).parent.glob("*.py") if not p.stem.startswith("_"))


def test_registry_hf_classes_and_architectures_are_the_same_set():
    named = [c for family in FAMILIES.values() for c in family.hf_classes]
    assert len(named) == len(set(named)), "an HF class is named by two families"
    assert set(named) == {a.hf_class for a in ARCHITECTURES.values()} == set(SUPPORTED_CLASSES)
    for arch in ARCHITECTURES.values():
        assert arch.hf_class in hf_family(arch.hf_class).hf_classes


def test_every_architecture_module_is_registered_under_its_name():
    assert MODULES == sorted(ARCHITECTURES)
    for name in MODULES:
        assert importlib.import_module(f"zoo.hf.{name}").ARCHITECTURE is ARCHITECTURES[name]


def test_registry_keys_and_config_classes_match_transformers():
    transformers = pytest.importorskip("transformers")
    for model_type, arch in ARCHITECTURES.items():
        config_class = getattr(transformers, arch.hf_class).config_class
        assert config_class.__name__ == arch.config_class
        assert config_class.model_type == model_type  # the key from_hf reads in config.json


def test_export_picks_the_most_specific_class(monkeypatch):
    """A specialised class added beside LLaMA takes the configs it names and leaves LLaMA the rest."""

    def grouped(num_kv_heads):
        """set"""
        return num_kv_heads is not None

    llama = ARCHITECTURES["llama"]
    special = dataclasses.replace(llama, hf_class="GroupedForCausalLM",
                                  export_when={**llama.export_when, "num_kv_heads": grouped})
    monkeypatch.setitem(FAMILIES, "grouped", Family("grouped", GPT, GPTConfig, "decoder", "zoo.tasks.CausalLM",
                                                    ("GroupedForCausalLM",)))
    monkeypatch.setitem(zoo.hf._BY_CLASS, "GroupedForCausalLM", special)
    tiny = dict(vocab_size=50, embed_dim=32, num_layers=1, num_heads=4)
    assert export_architecture(GPT(GPTConfig.llama(**tiny, num_kv_heads=2))) is special
    assert export_architecture(GPT(GPTConfig.llama(**tiny, num_kv_heads=None))) is llama
    assert export_architecture(GPT(GPTConfig(**tiny))) is ARCHITECTURES["gpt2"]
    with pytest.raises(ValueError) as error:
        export_architecture(GPT(GPTConfig(**tiny, position="alibi", num_kv_heads=2)))
    # The refusal names the general classes only: the specialised ones fail the same conditions.
    assert str(error.value) == (
        "zoo GPT: position='alibi' cannot be exported: GPT2LMHeadModel needs position='learned'; "
        "LlamaForCausalLM needs position='rotary'")
