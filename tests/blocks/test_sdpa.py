"""sdpa_attention: the math path it takes for short bf16 training sequences on a CPU, and the
block-wise backward a compiled model takes for longer causal ones, give what
F.scaled_dot_product_attention gives, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from tests.blocks.helpers import recording_backend
from zoo.blocks import sdpa
from zoo.blocks.sdpa import BLOCKWISE_MAX_KEYS, MATH_BELOW_KEYS, prefers_blockwise, prefers_math, sdpa_attention


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


@pytest.mark.parametrize("mask_kind", ["causal", "bool", "float", "none"])
def test_compiled_math_path_equals_sdpa_in_float64_with_no_score_sized_comparison(mask_kind):
    q, k, v = _qkv(torch.bfloat16)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(2, 1, 24, 24) > 0.3
        mask[0, 0, 3] = False  # a row that sees no key: 0 out, as SDPA, not NaN
    elif mask_kind == "float":
        mask = torch.randn(1, 4, 24, 24)  # an additive bias (T5's, ALiBi's)
    ops = set()
    score_sized = recording_backend(ops, keep=lambda node: node.meta["val"].shape == (2, 4, 24, 24))
    torch._dynamo.reset()
    compiled = torch.compile(sdpa_attention, backend=score_sized, fullgraph=True)
    out = compiled(q, k, v, attn_mask=mask, is_causal=mask_kind == "causal", scale=0.3, enable_gqa=True)
    grad = torch.randn(2, 4, 24, 16).bfloat16()
    grads = torch.autograd.grad(out, (q, k, v), grad)
    assert not ops & {"eq", "ne", "lt", "le", "gt", "ge", "where", "logical_not", "all"}, ops
    wide = [x.detach().double().requires_grad_() for x in (q, k, v)]
    expected = F.scaled_dot_product_attention(*wide, attn_mask=None if mask is None else mask.double() if mask_kind
                                              == "float" else mask, is_causal=mask_kind == "causal", scale=0.3,
                                              enable_gqa=True)
    expected_grads = torch.autograd.grad(expected, wide, grad.double())
    if mask_kind == "bool":
        assert out[0, :, 3].abs().max() == 0 and expected[0, :, 3].abs().max() == 0
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=2e-2)  # bf16 inputs, one rounding out
    for got, want in zip(grads, expected_grads, strict=True):
        assert got.isfinite().all()
        torch.testing.assert_close(got.double(), want, atol=3e-2, rtol=3e-2)


def test_math_only_where_it_was_measured_faster():
    assert prefers_math(*_qkv(torch.bfloat16)[:2])
    assert not prefers_math(*_qkv(torch.float32)[:2])  # float32: even
    assert not prefers_math(*_qkv(torch.bfloat16, grad=False)[:2])  # inference: the flash forward is fast
    assert not prefers_math(*_qkv(torch.bfloat16, t=MATH_BELOW_KEYS)[:2])  # longer: the flash kernel leads


def _reference_errors(outputs, reference, grad_out):
    """Largest |x - reference| / max|reference| of the output and of each gradient."""
    got = (outputs[0], *torch.autograd.grad(outputs[0], outputs[1:], grad_out))
    return [((a.double() - b).abs().max() / b.abs().max()).item() for a, b in zip(got, reference, strict=True)]


@pytest.mark.parametrize("t,kv_heads,is_causal", [(256, 4, True), (320, 2, True), (256, 4, False), (200, 2, False)])
def test_compiled_blockwise_backward_is_as_close_as_the_flash_kernel(monkeypatch, t, kv_heads, is_causal):
    """Inside torch.compile, bf16 training attention from 192 to 512 keys takes the flash
    forward with the block-wise backward: its output and gradients are as close to a float64
    reference as the flash kernel's own (a wrong block bound, scale or mask is off by far more)."""
    torch.manual_seed(0)
    q64 = torch.randn(2, 4, t, 64, dtype=torch.float64, requires_grad=True)
    k64, v64 = (torch.randn(2, kv_heads, t, 64, dtype=torch.float64, requires_grad=True) for _ in range(2))
    grad64 = torch.randn(2, 4, t, 64, dtype=torch.float64)
    out64 = F.scaled_dot_product_attention(q64, k64, v64, is_causal=is_causal, enable_gqa=True)
    reference = (out64, *torch.autograd.grad(out64, (q64, k64, v64), grad64))

    def attend(q, k, v):
        return sdpa_attention(q, k, v, is_causal=is_causal, enable_gqa=True)

    taken = []
    original = sdpa.prefers_blockwise
    monkeypatch.setattr(sdpa, "prefers_blockwise", lambda *a: taken.append(original(*a)) or taken[-1])
    inputs = [x.detach().bfloat16().requires_grad_() for x in (q64, k64, v64)]
    flash = _reference_errors((attend(*inputs), *inputs), reference, grad64.bfloat16())
    assert taken == [False]  # eager: the flash kernel
    inputs = [x.detach().bfloat16().requires_grad_() for x in (q64, k64, v64)]
    compiled = torch.compile(attend, backend="aot_eager", fullgraph=True)
    blockwise = _reference_errors((compiled(*inputs), *inputs), reference, grad64.bfloat16())
    assert taken[1:] == [True]
    for name, mine, kernel in zip(("output", "dq", "dk", "dv"), blockwise, flash, strict=True):
        assert mine < 1.5 * kernel, f"{name}: {mine:.1e} vs the flash kernel's {kernel:.1e}"


def test_blockwise_only_where_it_was_measured_faster():
    def case(t=256, dtype=torch.bfloat16, grad=True, causal=True, mask=None, dropout=0.0):
        q, k, _ = _qkv(dtype, t=t, grad=grad)
        return torch.compile(lambda q, k: prefers_blockwise(q, k, mask, dropout, causal), backend="eager",
                             fullgraph=True)(q, k)

    torch._dynamo.reset()
    assert case()
    assert not prefers_blockwise(*_qkv(torch.bfloat16, t=256)[:2], None, 0.0, True)  # eager: unfused, slower
    assert not case(t=MATH_BELOW_KEYS - 1)  # the math path's range
    assert not case(t=BLOCKWISE_MAX_KEYS + 1)  # longer: the kernel is as fast
    assert not case(dtype=torch.float32)
    assert not case(grad=False)
    assert case(causal=False)
    assert not case(mask=torch.ones(256, 256, dtype=torch.bool))
    assert not case(dropout=0.1)
