"""Sliding-window attention: the mask against its definition, the windowed module against the eager
reference with that mask written out, and the windowed cache holding only what the window needs."""

import pytest
import torch

from zoo.blocks.attention import MultiHeadAttention, eager_attention
from zoo.blocks.kv_cache import SlidingWindowCache
from zoo.blocks.masks import sliding_window_mask
from zoo.blocks.positions import RotaryEmbedding

B, E, H, D = 2, 32, 4, 8


def _by_definition(t: int, s: int, window: int, causal: bool) -> torch.Tensor:
    mask = torch.zeros(t, s, dtype=torch.bool)
    for i in range(t):
        q = s - t + i  # queries are the last t positions
        for j in range(s):
            mask[i, j] = (0 <= q - j < window) if causal else abs(q - j) < window
    return mask


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize(("t", "s", "window"), [(6, 6, 1), (6, 6, 3), (6, 6, 6), (2, 7, 3), (1, 9, 4)])
def test_sliding_window_mask_is_its_definition(t, s, window, causal):
    assert torch.equal(sliding_window_mask(t, s, window, causal), _by_definition(t, s, window, causal))


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_windowed_attention_equals_reference_with_the_mask_written_out(impl, causal):
    module = MultiHeadAttention(E, H, num_kv_heads=2, window=3, attn_implementation=impl).eval()
    x = torch.randn(B, 10, E)
    q, k, v = module._self_qkv(x, None)
    mask = _by_definition(10, 10, 3, causal)
    expected = module.out_proj(
        eager_attention(q, k, v, attn_mask=mask, enable_gqa=True).transpose(1, 2).reshape(B, 10, E)
    )
    torch.testing.assert_close(module(x, is_causal=causal), expected, atol=1e-5, rtol=1e-5)


def test_window_covering_the_sequence_changes_nothing_and_a_shorter_one_does():
    plain = MultiHeadAttention(E, H).eval()
    x = torch.randn(B, 10, E)

    def with_window(window: int) -> torch.Tensor:
        module = MultiHeadAttention(E, H, window=window).eval()
        module.load_state_dict(plain.state_dict())
        return module(x, is_causal=True)

    torch.testing.assert_close(with_window(10), plain(x, is_causal=True))
    assert not torch.allclose(with_window(9), plain(x, is_causal=True), atol=1e-4)


@pytest.mark.parametrize("window", [1, 3, 5])
@pytest.mark.parametrize("chunks", [[1] * 11, [4, 1, 1, 3, 2], [9, 1, 1]],
                         ids=["token_by_token", "chunked", "long_prompt"])
@pytest.mark.parametrize("rope", [False, True], ids=["no_rope", "rope"])
def test_windowed_cache_equals_full_forward_past_the_window(window, chunks, rope):
    module = MultiHeadAttention(E, H, num_kv_heads=2, window=window).eval()
    rotary = RotaryEmbedding(D)
    x = torch.randn(B, sum(chunks), E)

    def rope_for(start: int, stop: int):
        return rotary(torch.arange(start, stop)[None]) if rope else None

    with torch.no_grad():
        full = module(x, is_causal=True, rope=rope_for(0, x.shape[1]))
        cache, outs, start = module.new_cache(), [], 0
        for n in chunks:
            outs.append(module(x[:, start : start + n], is_causal=True, rope=rope_for(start, start + n), cache=cache))
            start += n
            assert cache.seq_len <= window - 1  # only what a later query can still see
    assert isinstance(cache, SlidingWindowCache)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [1, 2, 4])
def test_sliding_window_cache_returns_held_then_new_and_keeps_the_tail(window):
    cache = SlidingWindowCache(window)
    keys, values = [], []
    for t in (3, 1, 1, 1, 2, 1, 1, 7, 1, 1):
        k, v = torch.randn(2, 3, t, 5), torch.randn(2, 3, t, 5)
        held = torch.cat(keys, dim=2)[:, :, max(0, sum(x.shape[2] for x in keys) - (window - 1)):] if keys else None
        out_k, out_v = cache.append(k, v)
        expected_k = k if held is None else torch.cat((held, k), dim=2)
        assert torch.equal(out_k, expected_k)
        keys.append(k), values.append(v)
        all_k, all_v = torch.cat(keys, dim=2), torch.cat(values, dim=2)
        kept = min(window - 1, all_k.shape[2])
        assert cache.seq_len == kept
        assert torch.equal(cache.k, all_k[:, :, all_k.shape[2] - kept :])
        assert torch.equal(cache.v, all_v[:, :, all_v.shape[2] - kept :])
    cache.reorder(torch.tensor([1, 1]))
    assert torch.equal(cache.k, all_k[[1, 1], :, all_k.shape[2] - kept :])


def test_sliding_window_cache_keeps_autograd_working():
    cache = SlidingWindowCache(2)
    weight = torch.randn(5, requires_grad=True)
    total = 0
    for _ in range(4):
        k = torch.randn(1, 1, 1, 5) * weight
        keys, _ = cache.append(k, k)
        total = total + (keys * keys).sum()
    total.backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_bad_window_is_one_line():
    with pytest.raises(ValueError, match=r"window=0 must be >= 1"):
        MultiHeadAttention(E, H, window=0)
    with pytest.raises(ValueError, match="only self-attention"):
        MultiHeadAttention(E, H, window=4, cross_attention=True)
    with pytest.raises(ValueError, match="window=0"):
        SlidingWindowCache(0)
