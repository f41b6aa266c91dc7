"""Family models: plain ``nn.Module``s, importable without Lightning."""

from zoo.models.bert import BERT, BertConfig
from zoo.models.config import TransformerConfig
from zoo.models.gpt import GPT, GPTConfig
from zoo.models.t5 import T5, T5Config

__all__ = ["BERT", "BertConfig", "GPT", "GPTConfig", "T5", "T5Config", "TransformerConfig"]
