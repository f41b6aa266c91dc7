"""LightningModules: the pretraining objectives, classification and instruction fine-tuning, their metrics
and optimizers."""

from zoo.tasks.base import LanguageModelTask, load_task
from zoo.tasks.classification import BertClassifier, GPTClassifier, SequenceClassifier, T5Classifier
from zoo.tasks.finetune import FineTuneTask
from zoo.tasks.instruction import InstructionLM, InstructionMLM, InstructionSeq2Seq
from zoo.tasks.objectives import CausalLM, MaskedLM, Seq2SeqLM

__all__ = ["BertClassifier", "CausalLM", "FineTuneTask", "GPTClassifier", "InstructionLM", "InstructionMLM",
           "InstructionSeq2Seq", "LanguageModelTask", "MaskedLM", "Seq2SeqLM", "SequenceClassifier", "T5Classifier",
           "load_task"]
