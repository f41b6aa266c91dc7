"""Norms against their defining formulas."""

import pytest
import torch

from zoo.blocks.norms import NORMS, build_norm

DIM, EPS = 16, 1e-5


def _randomise(norm: torch.nn.Module) -> None:
    # Unit weights and zero biases would hide a wrong affine part.
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()


def test_layernorm_matches_formula():
    x = torch.randn(2, 5, DIM) * 3 + 1
    norm = build_norm("layernorm", DIM, eps=EPS)
    _randomise(norm)
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, as in Ba et al. (2016)
    expected = (x - mean) / torch.sqrt(var + EPS) * norm.weight + norm.bias
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


def test_layernorm_without_bias_has_no_shift():
    norm = build_norm("layernorm", DIM, eps=EPS, bias=False)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]


def test_rmsnorm_matches_formula():
    x = torch.randn(2, 5, DIM) * 3 + 1
    norm = build_norm("rmsnorm", DIM, eps=EPS, bias=True)  # bias is ignored: RMSNorm has none
    _randomise(norm)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + EPS) * norm.weight
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


def test_eps_is_passed_through():
    # A tiny input makes eps dominate the denominator, so a dropped eps shows.
    x = torch.full((1, DIM), 1e-3)
    norm = build_norm("rmsnorm", DIM, eps=1.0)
    torch.testing.assert_close(norm(x), x / torch.sqrt(torch.tensor(1e-6 + 1.0)))


def test_none_is_identity():
    x = torch.randn(2, 5, DIM)
    norm = build_norm("none", DIM)
    assert list(norm.parameters()) == []
    assert torch.equal(norm(x), x)


def test_unknown_norm_names_value_and_choices():
    with pytest.raises(ValueError) as err:
        build_norm("batchnorm", DIM)
    message = str(err.value)
    assert "batchnorm" in message
    for name in NORMS:
        assert name in message
