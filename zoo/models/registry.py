"""The one family registry: name → model class, config class (and preset), pretraining task and
Hugging Face classes. Tasks, ``zoo convert``, ``zoo generate``, ``zoo compare`` and ``zoo.hf`` all
look families up here.

The task is named by its dotted path, not imported: ``zoo.models`` stays importable without
Lightning.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from zoo.models.base import ZooModel
from zoo.models.bert import BERT, BertConfig
from zoo.models.config import TransformerConfig
from zoo.models.gpt import GPT, GPTConfig
from zoo.models.t5 import T5, T5Config

Shape = Literal["encoder", "decoder", "encoder-decoder"]


@dataclass(frozen=True)
class Family:
    """One family (or preset of one) as configs name it.

    Attributes:
        name: Its name in configs: ``bert``, ``gpt``, ``llama``, ``t5``.
        model_class: The plain ``nn.Module``.
        config_class: Its config dataclass.
        shape: ``encoder``, ``decoder`` or ``encoder-decoder``.
        task: Dotted path of its pretraining LightningModule (``zoo fit``).
        hf_classes: Hugging Face classes whose weights ``zoo.hf`` imports into this family.
        preset: A named recipe of ``zoo.models.config.PRESETS`` over ``config_class``'s defaults
            (LLaMA's); given fields win.
    """

    name: str
    model_class: type[ZooModel]
    config_class: type[TransformerConfig]
    shape: Shape
    task: str
    hf_classes: tuple[str, ...] = ()
    preset: str | None = None

    def make_config(self, **fields: Any) -> TransformerConfig:
        """The family's config with ``fields`` over its preset; unknown fields fail in one line."""
        return self.config_class.from_dict({"preset": self.preset, **fields} if self.preset else fields)

    @property
    def task_class(self) -> type:
        """The pretraining LightningModule (imports Lightning)."""
        module, name = self.task.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


FAMILIES: dict[str, Family] = {
    "bert": Family("bert", BERT, BertConfig, "encoder", "zoo.tasks.MaskedLM", ("BertForMaskedLM",)),
    "gpt": Family("gpt", GPT, GPTConfig, "decoder", "zoo.tasks.CausalLM", ("GPT2LMHeadModel", "GPTNeoXForCausalLM")),
    # Export ties between equally specific classes go to the first: Qwen3 and Mixtral before Mistral,
    # since they also take a sliding window.
    "llama": Family("llama", GPT, GPTConfig, "decoder", "zoo.tasks.CausalLM",
                    ("LlamaForCausalLM", "Qwen3ForCausalLM", "MixtralForCausalLM", "MistralForCausalLM",
                     "Gemma2ForCausalLM"),
                    preset="llama"),
    "t5": Family("t5", T5, T5Config, "encoder-decoder", "zoo.tasks.Seq2SeqLM", ("T5ForConditionalGeneration",)),
}


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name fails in one line listing the valid ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of(obj: ZooModel | TransformerConfig | type) -> Family:
    """The base family (``bert``, ``gpt`` or ``t5``, never a preset) of a model or config, its class
    or instance."""
    cls = obj if isinstance(obj, type) else type(obj)
    for family in FAMILIES.values():
        if not family.preset and (issubclass(cls, family.model_class) or issubclass(cls, family.config_class)):
            return family
    raise ValueError(f"{cls.__name__} is not a zoo family model or config; zoo has {sorted(FAMILIES)}")
