"""Incremental decoding with a KV cache gives the logits of the full forward pass."""

import pytest
import torch

from .helpers import POSITIONS, build, random_ids

ATOL = 1e-5


@pytest.mark.parametrize("num_kv_heads", [4, 1], ids=["mha", "mqa"])
@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_token_by_token_equals_full_forward(position, num_kv_heads):
    model = build("gpt", position=position, num_kv_heads=num_kv_heads).eval()
    ids = random_ids(2, 9)
    full = model(ids)
    cache = model.new_cache()
    steps = [model(ids[:, i : i + 1], cache=cache) for i in range(ids.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-5)
    assert cache.seq_len == ids.shape[1]


@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_prefill_then_decode_equals_full_forward(position):
    model = build("gpt", position=position).eval()
    ids = random_ids(2, 9)
    full = model(ids)
    cache = model.new_cache()
    steps = [model(ids[:, :5], cache=cache), model(ids[:, 5:7], cache=cache), model(ids[:, 7:], cache=cache)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_t5_cached_decode_equals_full_decode(position):
    model = build("t5", position=position).eval()
    src, dec = random_ids(2, 7), random_ids(2, 6)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, -3:] = False
    encoded = model.encode(src, mask)
    full = model.decode(dec, encoded, mask)
    cache = model.new_cache()
    steps = [model.decode(dec[:, i : i + 1], encoded, mask, cache=cache) for i in range(dec.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(full, model(src, dec, mask), atol=ATOL, rtol=1e-5)


def _left_pad(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.stack([torch.cat((torch.full((width - len(p),), 1), p)) for p in prompts])
    mask = torch.stack([torch.arange(width) >= width - len(p) for p in prompts])
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return ids, mask, position_ids


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_left_padded_batch_equals_each_prompt_alone(position, impl):
    model = build("gpt", position=position, attn_implementation=impl).eval()
    prompts = [random_ids(7), random_ids(4), random_ids(5)]
    ids, mask, position_ids = _left_pad(prompts)
    out = model(ids, mask, position_ids=position_ids)
    # Leading pads see no key under the causal mask; their rows must stay finite, or NaN would reach
    # real tokens through the next layer's values (0 · NaN = NaN).
    assert torch.isfinite(out).all()
    last = out[:, -1]
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(last[row], model(prompt[None])[0, -1], atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_left_padded_cached_generation_equals_each_prompt_alone(position):
    """Prefill a left-padded batch, then decode two more tokens with the cache, as generation does."""
    model = build("gpt", position=position).eval()
    prompts = [random_ids(6), random_ids(3)]
    continuation = random_ids(2, 2)
    ids, mask, position_ids = _left_pad(prompts)
    cache = model.new_cache()
    outs = [model(ids, mask, position_ids=position_ids, cache=cache)[:, -1]]
    for step in range(2):
        mask = torch.cat((mask, torch.ones(2, 1, dtype=torch.bool)), dim=1)
        position_ids = position_ids[:, -1:] + 1
        outs.append(model(continuation[:, step : step + 1], mask, position_ids=position_ids, cache=cache)[:, -1])
    batched = torch.stack(outs, dim=1)  # (b, 3, v)
    for row, prompt in enumerate(prompts):
        alone = model(torch.cat((prompt, continuation[row]))[None])[0, -3:]
        torch.testing.assert_close(batched[row], alone, atol=ATOL, rtol=1e-5)


def test_cache_reorder_follows_beams():
    model = build("gpt", position="rotary").eval()
    ids = random_ids(3, 5)
    cache = model.new_cache()
    model(ids, cache=cache)
    cache.reorder(torch.tensor([2, 2, 0]))
    nxt = random_ids(3, 1)
    out = model(nxt, cache=cache)[:, -1]
    expected = model(torch.cat((ids[[2, 2, 0]], nxt), dim=1))[:, -1]
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
