"""sdpa_attention: the math path it takes for short bf16 training sequences on a CPU gives what
F.scaled_dot_product_attention gives, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from zoo.blocks.sdpa import MATH_BELOW_KEYS, prefers_math, sdpa_attention


def _qkv(dtype, t=24, kv_heads=2, grad=True):
    q = torch.randn(2, 4, t, 16).to(dtype).requires_grad_(grad)
    k, v = (torch.randn(2, kv_heads, t, 16).to(dtype).requires_grad_(grad) for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("is_causal,with_mask", [(True, False), (False, True), (False, False)])
def test_math_path_equals_sdpa(is_causal, with_mask):
    q, k, v = _qkv(torch.bfloat16)
    assert prefers_math(q, k)
    mask = torch.rand(2, 1, 24, 24) > 0.3 if with_mask else None
    if mask is not None:
        mask[..., 0] = True  # no empty rows
    grad = torch.randn(2, 4, 24, 16).bfloat16()
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=0.3, enable_gqa=True)
    expected_grads = torch.autograd.grad(expected, (q, k, v), grad)
    out = sdpa_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=0.3, enable_gqa=True)
    grads = torch.autograd.grad(out, (q, k, v), grad)
    torch.testing.assert_close(out, expected, atol=2e-2, rtol=2e-2)  # bf16: both round differently
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=3e-2, rtol=3e-2)


def test_math_only_where_it_was_measured_faster():
    assert prefers_math(*_qkv(torch.bfloat16)[:2])
    assert not prefers_math(*_qkv(torch.float32)[:2])  # float32: even
    assert not prefers_math(*_qkv(torch.bfloat16, grad=False)[:2])  # inference: the flash forward is fast
    assert not prefers_math(*_qkv(torch.bfloat16, t=MATH_BELOW_KEYS)[:2])  # longer: the flash kernel leads
