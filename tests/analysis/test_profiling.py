"""KV-cache bytes computed from a config equal the bytes a real cache holds; memory and timing helpers."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.helpers import build, random_ids
from zoo.analysis import Timing, cache_nbytes, kv_cache_bytes, peak_memory_bytes, time_call, time_interleaved
from zoo.models import BertConfig


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_kv_cache_bytes_equals_a_filled_decoder_cache(kv_heads):
    model = build("gpt", num_kv_heads=kv_heads, position="rotary")
    cache = model.new_cache()
    with torch.no_grad():
        model(random_ids(3, 5), cache=cache)
        model(random_ids(3, 1), cache=cache)
    assert cache_nbytes(cache) == kv_cache_bytes(model.config, 6, batch_size=3)
    # MHA caches num_heads / num_kv_heads times more than GQA/MQA.
    mha = kv_cache_bytes(model.config.__class__(**{**model.config.to_dict(), "num_kv_heads": None}), 6)
    assert mha == kv_cache_bytes(model.config, 6) * 4 // kv_heads


def test_kv_cache_bytes_counts_t5_cross_attention_and_dtype():
    model = build("t5", num_decoder_layers=3)
    cache = model.new_cache()
    with torch.no_grad():
        encoded = model.encode(random_ids(2, 7))
        model.decode(random_ids(2, 4), encoded, cache=cache)
    assert cache_nbytes(cache) == kv_cache_bytes(model.config, 4, batch_size=2, context_len=7)
    assert kv_cache_bytes(model.config, 4, dtype=torch.bfloat16) * 2 == kv_cache_bytes(model.config, 4)
    with pytest.raises(ValueError, match="encoder-only"):
        kv_cache_bytes(BertConfig(), 4)


def test_peak_memory_bytes_on_cpu_sees_the_peak_not_the_end():
    def allocate():
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(2_000_000)  # 8 MB: 12 MB live here
        del a
        c = torch.empty(500_000)  # 2 MB: 10 MB live
        return b, c

    assert peak_memory_bytes(allocate) == 12_000_000


def test_peak_memory_grows_with_the_batch():
    model = build("gpt")

    def step(batch):
        return lambda: model(random_ids(batch, 16)).sum().backward()

    assert peak_memory_bytes(step(8)) > 2 * peak_memory_bytes(step(2))


def test_time_call_counts_calls():
    calls = []
    timing = time_call(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and len(timing.times) == 4
    assert isinstance(timing, Timing) and 0 <= timing.min <= timing.median and timing.spread >= 0
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)


def test_time_interleaved_rotates_the_order_and_pairs_rounds():
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = time_interleaved(fns, rounds=3, repeats=2, warmup=1)
    assert order[:3] == ["a", "b", "c"]  # the warm-up, once each
    rounds = order[3:]
    assert rounds == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b"]
    assert set(times) == {"a", "b", "c"} and all(len(t) == 3 and min(t) >= 0 for t in times.values())


def test_time_interleaved_tells_a_slow_call_from_a_fast_one():
    import time

    times = time_interleaved({"fast": lambda: None, "slow": lambda: time.sleep(0.002)}, rounds=3, repeats=2)
    assert all(s > f for s, f in zip(times["slow"], times["fast"], strict=True))  # paired round by round
    with pytest.raises(ValueError, match="at least one"):
        time_interleaved({})
    with pytest.raises(ValueError, match="rounds=0"):
        time_interleaved({"a": lambda: None}, rounds=0)
