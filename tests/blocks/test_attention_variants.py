"""QK-norm, attention softcapping, partial rotary, the parallel residual, sandwich norms and the
1 + weight RMSNorm, each against its formula computed from the module's own weights."""

import pytest
import torch
from torch import nn

from zoo.blocks.attention import MultiHeadAttention, eager_attention
from zoo.blocks.feed_forward import FeedForward
from zoo.blocks.layers import DecoderLayer, EncoderLayer
from zoo.blocks.norms import build_norm
from zoo.blocks.positions import RotaryEmbedding, apply_rotary

B, T, E, H, D = 2, 6, 32, 4, 8


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.view(B, -1, n, D).transpose(1, 2)


def _reference(module: MultiHeadAttention, x: torch.Tensor, *, q_norm=None, k_norm=None, rope=None,
               softcap=None) -> torch.Tensor:
    """Causal attention written out: project, norm each head, rotate, softmax(cap(QKᵀ/√d)) V."""
    q, k, v = module.q_proj(x), module.k_proj(x), module.v_proj(x)
    q, k, v = _heads(q, module.num_heads), _heads(k, module.num_kv_heads), _heads(v, module.num_kv_heads)
    if q_norm is not None:
        q, k = q_norm(q), k_norm(k)
    if rope is not None:
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
    k = k.repeat_interleave(module.num_heads // module.num_kv_heads, dim=1)
    v = v.repeat_interleave(module.num_heads // module.num_kv_heads, dim=1)
    scores = q @ k.transpose(-2, -1) / D**0.5
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    out = scores.softmax(dim=-1) @ v
    return module.out_proj(out.transpose(1, 2).reshape(B, T, -1))


@pytest.mark.parametrize("norm", [nn.RMSNorm, nn.LayerNorm])
@pytest.mark.parametrize("rope", [False, True], ids=["no_rope", "rope"])
def test_qk_norm_normalises_each_head_before_rotary(norm, rope):
    q_norm, k_norm = norm(D), norm(D)
    for n in (q_norm, k_norm):
        nn.init.normal_(n.weight, mean=1.0, std=0.3)  # a scale that is not one shows up in the output
    module = MultiHeadAttention(E, H, num_kv_heads=2, q_norm=q_norm, k_norm=k_norm).eval()
    x = torch.randn(B, T, E) * 3
    cos_sin = RotaryEmbedding(D)(torch.arange(T)[None]) if rope else None
    expected = _reference(module, x, q_norm=q_norm, k_norm=k_norm, rope=cos_sin)
    torch.testing.assert_close(module(x, is_causal=True, rope=cos_sin), expected, atol=1e-5, rtol=1e-5)


def test_qk_norm_in_cross_attention_norms_queries_and_context_keys():
    q_norm, k_norm = nn.RMSNorm(D), nn.RMSNorm(D)
    nn.init.normal_(k_norm.weight, mean=1.0, std=0.3)
    module = MultiHeadAttention(E, H, cross_attention=True, q_norm=q_norm, k_norm=k_norm).eval()
    x, context = torch.randn(B, T, E), torch.randn(B, 9, E)
    q = q_norm(_heads(module.q_proj(x), H))
    k, v = module.k_proj(context), module.v_proj(context)
    out = eager_attention(q, k_norm(_heads(k, H)), _heads(v, H))
    expected = module.out_proj(out.transpose(1, 2).reshape(B, T, -1))
    torch.testing.assert_close(module(x, context), expected, atol=1e-5, rtol=1e-5)


def test_qk_norm_needs_both_norms():
    with pytest.raises(ValueError, match="both q_norm and k_norm"):
        MultiHeadAttention(E, H, q_norm=nn.RMSNorm(D))


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_softcap_caps_scaled_scores_before_the_mask(impl):
    module = MultiHeadAttention(E, H, softcap=2.0, attn_implementation=impl).eval()
    x = torch.randn(B, T, E) * 10  # large scores, so the cap binds
    torch.testing.assert_close(module(x, is_causal=True), _reference(module, x, softcap=2.0), atol=1e-5, rtol=1e-5)
    uncapped = MultiHeadAttention(E, H).eval()
    uncapped.load_state_dict(module.state_dict())
    assert not torch.allclose(uncapped(x, is_causal=True), module(x, is_causal=True), atol=1e-3)


def test_bad_softcap_is_one_line():
    with pytest.raises(ValueError, match=r"softcap=0.0 must be > 0"):
        MultiHeadAttention(E, H, softcap=0.0)


def test_partial_rotary_rotates_the_first_dimensions_and_passes_the_rest():
    rotary = RotaryEmbedding(4)  # 4 of 8 dimensions
    cos, sin = rotary(torch.arange(T)[None])
    x = torch.randn(B, H, T, D)
    out = apply_rotary(x, cos, sin)
    torch.testing.assert_close(out[..., :4], apply_rotary(x[..., :4], cos, sin))
    assert torch.equal(out[..., 4:], x[..., 4:])


def test_partial_rotary_scores_depend_only_on_relative_offset():
    rotary = RotaryEmbedding(4)
    q, k = torch.randn(1, 1, 1, D), torch.randn(1, 1, 1, D)

    def score(i: int, j: int) -> torch.Tensor:
        qi = apply_rotary(q, *rotary(torch.tensor([[i]])))
        kj = apply_rotary(k, *rotary(torch.tensor([[j]])))
        return (qi * kj).sum()

    torch.testing.assert_close(score(5, 2), score(13, 10))
    assert not torch.allclose(score(5, 2), score(5, 4))


def _layer(cls=EncoderLayer, **kwargs):
    attn = MultiHeadAttention(E, H)
    norms = {name: nn.LayerNorm(E) for name in ("self_attn_norm", "ffn_norm")}
    if cls is DecoderLayer:
        return cls(attn, MultiHeadAttention(E, H, cross_attention=True), FeedForward(E, 64),
                   cross_attn_norm=nn.LayerNorm(E), **norms, **kwargs).eval()
    return cls(attn, FeedForward(E, 64), **norms, **kwargs).eval()


def test_parallel_residual_sums_both_branches_of_the_layer_input():
    layer = _layer(residual="parallel")
    x = torch.randn(B, T, E)
    expected = x + layer.self_attn(layer.self_attn_norm(x), is_causal=True) + layer.ffn(layer.ffn_norm(x))
    torch.testing.assert_close(layer(x, is_causal=True), expected)


def test_parallel_decoder_layer_sums_all_three_branches():
    layer = _layer(DecoderLayer, residual="parallel")
    x, context = torch.randn(B, T, E), torch.randn(B, 9, E)
    expected = (x + layer.self_attn(layer.self_attn_norm(x), is_causal=True)
                + layer.cross_attn(layer.cross_attn_norm(x), context) + layer.ffn(layer.ffn_norm(x)))
    torch.testing.assert_close(layer(x, context, is_causal=True), expected)


def test_sequential_residual_is_unchanged():
    layer = _layer()
    x = torch.randn(B, T, E)
    h = x + layer.self_attn(layer.self_attn_norm(x), is_causal=True)
    torch.testing.assert_close(layer(x, is_causal=True), h + layer.ffn(layer.ffn_norm(h)))


def test_parallel_residual_refuses_post_norm():
    with pytest.raises(ValueError, match="residual='parallel' needs norm_placement='pre'"):
        _layer(residual="parallel", norm_placement="post")
    with pytest.raises(ValueError, match="residual='ladder'"):
        _layer(residual="ladder")


def test_sandwich_norms_each_branch_output_too():
    norms = {name: nn.LayerNorm(E) for name in ("self_attn_norm", "ffn_norm", "self_attn_post_norm", "ffn_post_norm")}
    layer = EncoderLayer(MultiHeadAttention(E, H), FeedForward(E, 64), norm_placement="sandwich", **norms).eval()
    x = torch.randn(B, T, E)
    h = x + layer.self_attn_post_norm(layer.self_attn(layer.self_attn_norm(x), is_causal=True))
    expected = h + layer.ffn_post_norm(layer.ffn(layer.ffn_norm(h)))
    torch.testing.assert_close(layer(x, is_causal=True), expected)


def test_sandwich_needs_its_post_norms_and_others_refuse_them():
    with pytest.raises(ValueError, match="'sandwich' takes self_attn_post_norm and ffn_post_norm"):
        _layer(norm_placement="sandwich")
    with pytest.raises(ValueError, match="other placements take neither"):
        _layer(self_attn_post_norm=nn.LayerNorm(E), ffn_post_norm=nn.LayerNorm(E))


def test_rmsnorm_plus_one_scales_by_one_plus_weight():
    norm = build_norm("rmsnorm_plus_one", E, eps=1e-6)
    assert torch.equal(norm.weight, torch.zeros(E))  # starts as a plain RMSNorm without scale
    nn.init.normal_(norm.weight)
    x = torch.randn(B, T, E)
    expected = x / (x.square().mean(-1, keepdim=True) + 1e-6).sqrt() * (1 + norm.weight)
    torch.testing.assert_close(norm(x), expected)
    assert norm(x.bfloat16()).dtype == torch.bfloat16
