"""The KV cache changes nothing but speed: cached and uncached decoding give the same tokens and the
same next-token logits, for every position scheme, MHA / GQA / MQA, padded batches and beam search."""

from __future__ import annotations

import pytest
import torch

from zoo.blocks.attention import KVCache
from zoo.generation import _CausalState, _Seq2SeqState, generate

from .helpers import HEADS, PAD, POSITIONS, build, prompt_batch

ATOL = 1e-5  # fp32
NEW = 8


def decoding_state(model, family: str, ids, mask, use_cache: bool):
    if family == "gpt":
        return _CausalState(model, ids, mask, use_cache, room=NEW)
    return _Seq2SeqState(model, ids, mask, use_cache, room=NEW, start_id=PAD)


@pytest.mark.parametrize("heads", HEADS)
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_cached_greedy_decoding_equals_uncached(family, position, heads):
    model = build(family, position=position, num_kv_heads=HEADS[heads])
    _, ids, mask = prompt_batch(family)  # rows of different lengths: padding on every step
    options = dict(max_new_tokens=NEW, min_new_tokens=NEW)
    cached = generate(model, ids, mask, **options)
    assert torch.equal(cached, generate(model, ids, mask, use_cache=False, **options))

    with torch.inference_mode():
        fast, slow = (decoding_state(model, family, ids, mask, use_cache) for use_cache in (True, False))
        fast_logits, slow_logits = fast.start(), slow.start()
        for step in range(NEW):
            assert (fast_logits - slow_logits).abs().max() <= ATOL, f"step {step}"
            tokens = fast_logits.argmax(dim=-1)
            fast_logits, slow_logits = fast.step(tokens), slow.step(tokens)
    assert fast.cache is not None and slow.cache is None


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_cached_beam_search_equals_uncached(family, position):
    """Beam search reorders the cache every step; the uncached path reorders only token rows."""
    model = build(family, position=position, num_kv_heads=2)
    _, ids, mask = prompt_batch(family)
    options = dict(max_new_tokens=NEW, num_beams=3, length_penalty=0.7)
    assert torch.equal(generate(model, ids, mask, **options), generate(model, ids, mask, use_cache=False, **options))


@pytest.mark.parametrize("capacity", [0, 16], ids=["growing", "reserved"])
def test_kv_cache_buffer_equals_concatenation(capacity):
    cache = KVCache(capacity)
    keys, values = [], []
    for t in (4, 1, 1, 3, 1, 9):  # outgrows both a doubling buffer and the reservation
        k, v = torch.randn(2, 3, t, 5), torch.randn(2, 3, t, 5)
        keys.append(k), values.append(v)
        out_k, out_v = cache.append(k, v)
        assert torch.equal(out_k, torch.cat(keys, dim=2)) and torch.equal(out_v, torch.cat(values, dim=2))
    index = torch.tensor([1, 1])
    cache.reorder(index)
    k, v = torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)
    out_k, out_v = cache.append(k, v)
    assert torch.equal(out_k, torch.cat((torch.cat(keys, dim=2)[index], k), dim=2))
    assert torch.equal(out_v, torch.cat((torch.cat(values, dim=2)[index], v), dim=2))
    assert cache.seq_len == 20


def test_kv_cache_keeps_autograd_working():
    """With gradients recorded the cache concatenates, so earlier steps' saved tensors stay valid."""
    cache = KVCache(capacity=8)
    weight = torch.randn(5, requires_grad=True)
    total = 0
    for _ in range(3):
        k = torch.randn(1, 1, 1, 5) * weight
        keys, _ = cache.append(k, k)
        total = total + (keys * keys).sum()
    total.backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()
