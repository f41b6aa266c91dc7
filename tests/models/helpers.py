"""Tiny models of every family and one way to call each, shared by the model tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

FAMILIES = {"bert": (BERT, BertConfig), "gpt": (GPT, GPTConfig), "t5": (T5, T5Config)}
POSITIONS = ["none", "learned", "sinusoidal", "rotary", "alibi", "relative"]
VOCAB = 50
TINY = dict(vocab_size=VOCAB, max_seq_len=32, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0)


def config(family: str, **overrides):
    return FAMILIES[family][1](**{**TINY, **overrides})


def build(family: str, **overrides):
    return FAMILIES[family][0](config(family, **overrides))


def logits(model, family: str, input_ids, attention_mask=None, decoder_input_ids=None):
    """Logits ``(b, t, v)``; T5 decodes ``decoder_input_ids`` (default: the input itself)."""
    if family == "t5":
        dec = input_ids if decoder_input_ids is None else decoder_input_ids
        return model(input_ids, dec, attention_mask=attention_mask)
    return model(input_ids, attention_mask)


def loss(model, family: str, input_ids, targets, attention_mask=None, decoder_input_ids=None):
    out = logits(model, family, input_ids, attention_mask, decoder_input_ids)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))


def random_ids(*shape: int) -> torch.Tensor:
    return torch.randint(4, VOCAB, shape)  # ids 0-3 are the special tokens
