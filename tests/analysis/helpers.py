"""Tiny models of every family, shared by the analysis tests."""

from __future__ import annotations

import torch

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

VOCAB = 50
TINY = dict(vocab_size=VOCAB, max_seq_len=32, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0)
MODELS = {"bert": (BERT, BertConfig), "gpt": (GPT, GPTConfig), "t5": (T5, T5Config)}


def build(family: str, **overrides) -> torch.nn.Module:
    model_class, config_class = MODELS[family]
    return model_class(config_class(**{**TINY, **overrides})).eval()


def random_ids(*shape: int) -> torch.Tensor:
    return torch.randint(4, VOCAB, shape)  # ids 0-3 are the special tokens


def run(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of any family (T5 decodes its own input)."""
    if isinstance(model, T5):
        return model(input_ids, input_ids, attention_mask=attention_mask)
    return model(input_ids, attention_mask)
