"""The one boolean mask convention: True = this key may be attended to."""

import pytest
import torch

from zoo.blocks.masks import attention_bias_to_mask, causal_mask, combine_masks, padding_mask, unblock_empty_rows


@pytest.mark.parametrize(("t", "s"), [(5, 5), (1, 6), (3, 7), (4, 4)])
def test_causal_mask_queries_are_the_last_t_of_s_keys(t, s):
    mask = causal_mask(t, s)
    assert mask.shape == (t, s) and mask.dtype == torch.bool
    # Query i sits at absolute position s - t + i and sees keys 0 .. s - t + i.
    expected = torch.tensor([[j <= s - t + i for j in range(s)] for i in range(t)])
    assert torch.equal(mask, expected)


def test_causal_mask_square_is_lower_triangle_and_single_query_sees_all():
    assert torch.equal(causal_mask(4, 4), torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    assert causal_mask(1, 6).all()


def test_padding_mask_shape_and_dtype():
    attention_mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mask = padding_mask(attention_mask)
    assert mask.shape == (2, 1, 1, 3) and mask.dtype == torch.bool
    assert torch.equal(mask[:, 0, 0], attention_mask.bool())


def test_unblock_empty_rows_only_touches_empty_rows():
    mask = torch.tensor([[False, False, False], [True, False, True], [False, False, False], [True, True, True]])
    out = unblock_empty_rows(mask)
    assert out[0].all() and out[2].all()
    assert torch.equal(out[1], mask[1]) and torch.equal(out[3], mask[3])


def test_combine_masks_ands_and_skips_none():
    a = torch.tensor([[True, True, False]])  # (1, 3)
    b = torch.tensor([[True], [False]])  # (2, 1)
    assert combine_masks() is None
    assert combine_masks(None, None) is None
    assert combine_masks(None, a) is a
    assert torch.equal(combine_masks(a, None, b), a & b)
    assert combine_masks(a, b).shape == (2, 3)


def test_attention_bias_to_mask():
    bias = torch.randn(1, 2, 3, 3)
    mask = torch.tensor([True, False, True])
    assert attention_bias_to_mask(None, None, torch.float32) is None
    assert attention_bias_to_mask(bias, None, torch.float32) is bias
    assert attention_bias_to_mask(None, mask, torch.float32) is mask
    folded = attention_bias_to_mask(bias, mask, torch.float32)
    assert torch.equal(folded[..., [0, 2]], bias[..., [0, 2]])
    assert (folded[..., 1] == torch.finfo(torch.float32).min).all()
