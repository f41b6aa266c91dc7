"""Tiny decoder and encoder-decoder models and prompt batches shared by the generation tests."""

from __future__ import annotations

import torch

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

POSITIONS = ["none", "learned", "sinusoidal", "rotary", "alibi", "relative"]
HEADS = {"mha": 4, "gqa": 2, "mqa": 1}  # num_kv_heads for 4 query heads
VOCAB = 50
PAD, EOS = 0, 3
TINY = dict(vocab_size=VOCAB, max_seq_len=64, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0,
            pad_token_id=PAD, eos_token_id=EOS)


def gpt(**overrides) -> GPT:
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()


def t5(**overrides) -> T5:
    return T5(T5Config(**{**TINY, **overrides})).eval()


def bert(**overrides) -> BERT:
    return BERT(BertConfig(**{**TINY, **overrides})).eval()


def build(family: str, **overrides) -> GPT | T5:
    return gpt(**overrides) if family == "gpt" else t5(**overrides)


def random_ids(*shape: int, vocab: int = VOCAB) -> torch.Tensor:
    return torch.randint(4, vocab, shape)  # ids 0-3 are the special tokens


def pad_batch(prompts: list[torch.Tensor], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)``: prompts padded with PAD to the longest, on the left (decoders) or
    the right (encoders)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        columns = slice(width - len(prompt), width) if left else slice(0, len(prompt))
        ids[row, columns], mask[row, columns] = prompt, 1
    return ids, mask


def prompt_batch(
    family: str, lengths: tuple[int, ...] = (7, 3, 5)
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Prompts of different lengths and their padded batch (left-padded for GPT, right for T5)."""
    prompts = [random_ids(n) for n in lengths]
    return (prompts, *pad_batch(prompts, left=family == "gpt"))
