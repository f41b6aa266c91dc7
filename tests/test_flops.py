"""The model's own FLOP count (zoo.flops) against PyTorch's FlopCounterMode on real training steps.

The models run the eager attention reference: FlopCounterMode has no formula for the CPU flash
kernel SDPA dispatches to (``_scaled_dot_product_flash_attention_for_cpu``) and would count its
score products as zero, while eager attention's ``q @ kᵀ`` and ``weights @ v`` are plain bmm.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from zoo.data.objectives import IGNORE_INDEX
from zoo.flops import batch_tokens, training_flops
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

SIZE = dict(vocab_size=97, embed_dim=32, num_layers=2, num_heads=4, max_seq_len=64, dropout=0.0,
            attn_implementation="eager")


def _measured(loss_fn) -> int:
    with FlopCounterMode(display=False) as counter:
        loss_fn().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("config", [
    GPTConfig(**SIZE),
    GPTConfig.llama(**{**SIZE, "num_heads": 4, "num_kv_heads": 2}),  # gated FFN, GQA, rotary
    GPTConfig(**SIZE, head_dim=16, ffn_dim=40),  # head_dim * heads != embed_dim
    GPTConfig.llama(**SIZE, num_experts=4, experts_per_token=2),  # router + k of E experts per token
], ids=["gpt", "llama", "wide-heads", "moe"])
def test_decoder_count_matches_flop_counter(config):
    model = GPT(config)
    batch = {"input_ids": torch.randint(0, 97, (3, 20))}
    measured = _measured(lambda: F.cross_entropy(model(batch["input_ids"]).flatten(0, 1), batch["input_ids"].flatten()))
    assert training_flops(config, batch) == measured
    assert batch_tokens(batch) == 60


def test_masked_lm_counts_only_scored_positions():
    config = BertConfig(**SIZE)
    model = BERT(config)
    ids = torch.randint(0, 97, (3, 20))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, ::4] = ids[:, ::4]  # 15 of 60 positions scored, as MaskedLM runs its head
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids, dtype=torch.bool), "labels": labels}

    def loss():
        selected = labels != IGNORE_INDEX
        return F.cross_entropy(model.mlm_head(model.encode(ids)[selected]), labels[selected])

    assert training_flops(config, batch) == _measured(loss)


def test_encoder_decoder_count_matches_flop_counter():
    config = T5Config(**SIZE, num_decoder_layers=3)
    model = T5(config)
    ids, dec = torch.randint(0, 97, (2, 24)), torch.randint(0, 97, (2, 10))
    batch = {"input_ids": ids, "decoder_input_ids": dec}
    measured = _measured(lambda: F.cross_entropy(model(ids, dec).flatten(0, 1), dec.flatten()))
    assert training_flops(config, batch) == measured
    assert batch_tokens(batch) == 68


def test_body_only_count_for_classifiers():
    """lm_head=False counts what a classifier runs before its small label head: the stack."""
    config = GPTConfig(**SIZE)
    model = GPT(config)
    ids = torch.randint(0, 97, (3, 20))
    measured = _measured(lambda: model.hidden_states(ids).square().mean())
    assert training_flops(config, {"input_ids": ids}, lm_head=False) == measured
