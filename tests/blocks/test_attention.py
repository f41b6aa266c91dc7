"""MultiHeadAttention: the fused SDPA path against the eager reference, the reference against a
softmax written here, and the properties every attention must have (causality, padding, GQA, cache)."""

import math

import pytest
import torch

from zoo.blocks.attention import KVCache, MultiHeadAttention, eager_attention
from zoo.blocks.positions import RotaryEmbedding

E, H, B = 32, 4, 2
D = E // H


def _pair(**kwargs) -> tuple[MultiHeadAttention, MultiHeadAttention]:
    """The same random weights behind the sdpa and the eager implementation."""
    sdpa = MultiHeadAttention(E, H, attn_implementation="sdpa", **kwargs)
    eager = MultiHeadAttention(E, H, attn_implementation="eager", **kwargs)
    eager.load_state_dict(sdpa.state_dict())
    return sdpa.eval(), eager.eval()


def _reference(q, k, v, *, mask=None, bias=None, causal=False, scale=None):
    """softmax(q·kᵀ·scale + bias) over allowed keys, then ·v — one query row at a time."""
    b, h, t, d = q.shape
    s = k.shape[2]
    k, v = k.repeat_interleave(h // k.shape[1], 1), v.repeat_interleave(h // v.shape[1], 1)
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = torch.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                scores = (k[bi, hi] @ q[bi, hi, i]) * scale  # (s,)
                if bias is not None:
                    scores = scores + bias.expand(b, h, t, s)[bi, hi, i]
                allowed = torch.ones(s, dtype=torch.bool)
                if mask is not None:
                    allowed &= mask.expand(b, h, t, s)[bi, hi, i]
                if causal:
                    allowed &= torch.arange(s) <= s - t + i
                weights = torch.exp(scores - scores[allowed].max()) * allowed
                out[bi, hi, i] = (weights / weights.sum()) @ v[bi, hi]
    return out


# --- eager reference against a softmax written here ---------------------------------------------


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_bias", "scale"])
def test_eager_attention_matches_hand_written_softmax(case, num_kv_heads):
    t, s = 5, 5
    q = torch.randn(B, H, t, D)
    k, v = torch.randn(B, num_kv_heads, s, D), torch.randn(B, num_kv_heads, s, D)
    mask = torch.rand(B, 1, t, s) > 0.3
    mask[..., 0] = True  # keep every row non-empty
    bias = torch.randn(1, H, t, s)
    kwargs, ref_kwargs = {}, {}
    if case == "causal":
        kwargs, ref_kwargs = {"is_causal": True}, {"causal": True}
    elif case == "bool_mask":
        kwargs, ref_kwargs = {"attn_mask": mask}, {"mask": mask}
    elif case == "float_bias":
        kwargs, ref_kwargs = {"attn_mask": bias}, {"bias": bias}
    elif case == "scale":
        kwargs, ref_kwargs = {"scale": 1.0}, {"scale": 1.0}
    out = eager_attention(q, k, v, enable_gqa=num_kv_heads != H, **kwargs)
    torch.testing.assert_close(out, _reference(q, k, v, **ref_kwargs), atol=1e-5, rtol=1e-5)


def test_eager_attention_matches_sdpa_functional():
    q, k, v = torch.randn(B, H, 6, D), torch.randn(B, 2, 6, D), torch.randn(B, 2, 6, D)
    for kwargs in ({}, {"is_causal": True}, {"attn_mask": torch.randn(B, H, 6, 6)}):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True, **kwargs)
        torch.testing.assert_close(eager_attention(q, k, v, enable_gqa=True, **kwargs), expected, atol=1e-5, rtol=1e-5)


# --- module: SDPA path against eager path ---------------------------------------------------------


CASES = ["self", "causal", "cross", "padding", "causal_padding", "bias", "causal_bias_padding", "rope_causal"]


def _case_inputs(case: str, num_kv_heads: int, t: int = 6, s_ctx: int = 9):
    x = torch.randn(B, t, E)
    context = torch.randn(B, s_ctx, E) if case == "cross" else None
    s = s_ctx if case == "cross" else t
    key_mask = torch.ones(B, s, dtype=torch.bool)
    key_mask[0, -2:] = False
    kwargs = {}
    if case == "cross":
        kwargs["mask"] = key_mask[:, None, None, :]
    if "causal" in case:
        kwargs["is_causal"] = True
    if "padding" in case:
        kwargs["mask"] = key_mask[:, None, None, :]
    if "bias" in case:
        kwargs["bias"] = torch.randn(1, H, t, s)
    if "rope" in case:
        kwargs["rope"] = RotaryEmbedding(D)(torch.arange(t)[None])
    return x, context, kwargs


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("case", CASES)
def test_sdpa_matches_eager(case, num_kv_heads):
    sdpa, eager = _pair(num_kv_heads=num_kv_heads, cross_attention=case == "cross")
    x, context, kwargs = _case_inputs(case, num_kv_heads)
    torch.testing.assert_close(sdpa(x, context, **kwargs), eager(x, context, **kwargs), atol=1e-5, rtol=1e-5)


def test_module_matches_hand_written_attention():
    """Projections, head split and merge, and the attention itself, all written out here."""
    module = MultiHeadAttention(E, H, num_kv_heads=2, attn_implementation="eager").eval()
    x = torch.randn(B, 5, E)
    q, k, v = (x @ p.weight.T + p.bias for p in (module.q_proj, module.k_proj, module.v_proj))
    q = q.view(B, 5, H, D).transpose(1, 2)
    k, v = k.view(B, 5, 2, D).transpose(1, 2), v.view(B, 5, 2, D).transpose(1, 2)
    heads = _reference(q, k, v, causal=True).transpose(1, 2).reshape(B, 5, E)
    expected = heads @ module.out_proj.weight.T + module.out_proj.bias
    torch.testing.assert_close(module(x, is_causal=True), expected, atol=1e-5, rtol=1e-5)


# --- GQA with repeated K/V is MHA -----------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("num_kv_heads", [2, 1])
def test_gqa_equals_mha_with_repeated_kv_weights(num_kv_heads, impl):
    gqa = MultiHeadAttention(E, H, num_kv_heads=num_kv_heads, attn_implementation=impl).eval()
    mha = MultiHeadAttention(E, H, attn_implementation=impl).eval()
    group = H // num_kv_heads

    def repeat_heads(t: torch.Tensor) -> torch.Tensor:
        # Query head i reads key/value head i // group: repeat each kv head's rows `group` times.
        return t.view(num_kv_heads, D, *t.shape[1:]).repeat_interleave(group, dim=0).reshape(H * D, *t.shape[1:])

    with torch.no_grad():
        for name in ("weight", "bias"):
            getattr(mha.q_proj, name).copy_(getattr(gqa.q_proj, name))
            getattr(mha.k_proj, name).copy_(repeat_heads(getattr(gqa.k_proj, name)))
            getattr(mha.v_proj, name).copy_(repeat_heads(getattr(gqa.v_proj, name)))
        mha.out_proj.load_state_dict(gqa.out_proj.state_dict())
    x = torch.randn(B, 6, E)
    mask = torch.ones(B, 1, 1, 6, dtype=torch.bool)
    mask[1, ..., -1] = False
    for kwargs in ({}, {"is_causal": True}, {"mask": mask, "is_causal": True}):
        torch.testing.assert_close(gqa(x, **kwargs), mha(x, **kwargs), atol=1e-5, rtol=1e-5)


# --- properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("extra", ["none", "mask", "bias"])
def test_causal_outputs_ignore_later_tokens(impl, extra):
    module = MultiHeadAttention(E, H, num_kv_heads=2, attn_implementation=impl).eval()
    t, j = 8, 5
    kwargs = {"is_causal": True}
    if extra == "mask":
        kwargs["mask"] = torch.ones(B, 1, 1, t, dtype=torch.bool)
    elif extra == "bias":
        kwargs["bias"] = torch.randn(1, H, t, t)
    x = torch.randn(B, t, E)
    changed = x.clone()
    changed[:, j] = torch.randn(B, E)
    out, out_changed = module(x, **kwargs), module(changed, **kwargs)
    torch.testing.assert_close(out_changed[:, :j], out[:, :j], atol=1e-6, rtol=0)
    assert not torch.allclose(out_changed[:, j:], out[:, j:], atol=1e-4)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_padded_keys_never_change_real_outputs(impl, with_bias):
    module = MultiHeadAttention(E, H, attn_implementation=impl).eval()
    t = 7
    real = torch.ones(B, t, dtype=torch.bool)
    real[0, 5:] = False
    real[1, 2] = False  # a hole in the middle too
    bias = torch.randn(1, H, t, t) if with_bias else None
    x = torch.randn(B, t, E)
    changed = torch.where(real[..., None], x, torch.randn(B, t, E) * 10)
    out = module(x, mask=real[:, None, None, :], bias=bias)
    out_changed = module(changed, mask=real[:, None, None, :], bias=bias)
    torch.testing.assert_close(out_changed[real], out[real], atol=1e-5, rtol=1e-5)
    # Without the mask the same change does reach the real positions.
    assert not torch.allclose(module(changed, bias=bias)[real], module(x, bias=bias)[real], atol=1e-4)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_query_that_sees_no_key_stays_finite(impl, with_bias):
    # A left pad under a causal mask: row 0 of batch 0 has every key masked.
    module = MultiHeadAttention(E, H, attn_implementation=impl).eval()
    real = torch.tensor([[False, True, True, True], [True, True, True, True]])
    bias = torch.randn(1, H, 4, 4) if with_bias else None
    out = module(torch.randn(B, 4, E), mask=real[:, None, None, :], bias=bias, is_causal=True)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("chunks", [[1] * 6, [3, 1, 2]], ids=["token_by_token", "chunked"])
@pytest.mark.parametrize("rope", [False, True], ids=["no_rope", "rope"])
def test_kv_cache_equals_full_causal_forward(impl, num_kv_heads, chunks, rope):
    module = MultiHeadAttention(E, H, num_kv_heads=num_kv_heads, attn_implementation=impl).eval()
    rotary = RotaryEmbedding(D)
    x = torch.randn(B, sum(chunks), E)

    def rope_for(start: int, stop: int):
        return rotary(torch.arange(start, stop)[None]) if rope else None

    full = module(x, is_causal=True, rope=rope_for(0, x.shape[1]))
    cache, outs, start = KVCache(), [], 0
    for n in chunks:
        outs.append(module(x[:, start : start + n], is_causal=True, rope=rope_for(start, start + n), cache=cache))
        start += n
    assert cache.k.shape == (B, num_kv_heads, x.shape[1], D)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_cross_attention_cache_reuses_encoder_kv(impl):
    module = MultiHeadAttention(E, H, num_kv_heads=2, cross_attention=True, attn_implementation=impl).eval()
    x, context = torch.randn(B, 5, E), torch.randn(B, 9, E)
    mask = torch.ones(B, 1, 1, 9, dtype=torch.bool)
    mask[0, ..., -3:] = False
    full = module(x, context, mask=mask)
    cache = KVCache()
    first = module(x[:, :2], context, mask=mask, cache=cache)
    k_before = cache.k
    # A different context on later steps must be ignored: the cached encoder keys/values are reused.
    rest = module(x[:, 2:], torch.zeros_like(context), mask=mask, cache=cache)
    assert cache.k is k_before and cache.k.shape == (B, 2, 9, D)
    torch.testing.assert_close(torch.cat((first, rest), dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_reorder_keeps_rows():
    cache = KVCache()
    k, v = torch.randn(3, 2, 4, D), torch.randn(3, 2, 4, D)
    cache.append(k, v)
    cache.reorder(torch.tensor([2, 0]))
    assert torch.equal(cache.k, k[[2, 0]]) and torch.equal(cache.v, v[[2, 0]])


# --- errors ---------------------------------------------------------------------------------------


def test_embed_dim_not_divisible_by_heads():
    with pytest.raises(ValueError) as err:
        MultiHeadAttention(30, 4)
    assert "embed_dim=30" in str(err.value) and "num_heads=4" in str(err.value)


def test_heads_not_divisible_by_kv_heads():
    with pytest.raises(ValueError) as err:
        MultiHeadAttention(32, 4, num_kv_heads=3)
    assert "num_heads=4" in str(err.value) and "num_kv_heads=3" in str(err.value)


def test_explicit_head_dim_lifts_divisibility_rule():
    module = MultiHeadAttention(30, 4, head_dim=8)
    assert module(torch.randn(1, 3, 30)).shape == (1, 3, 30)


def test_cross_attention_needs_context():
    module = MultiHeadAttention(E, H, cross_attention=True)
    with pytest.raises(ValueError, match="context"):
        module(torch.randn(1, 3, E))
