"""LightningModules: the objectives, their metrics and optimizers."""

from zoo.tasks.base import LanguageModelTask, load_task
from zoo.tasks.objectives import CausalLM, MaskedLM, Seq2SeqLM

__all__ = ["CausalLM", "LanguageModelTask", "MaskedLM", "Seq2SeqLM", "load_task"]
