"""Position schemes against their papers' formulas and an independent implementation (Hugging Face)."""

import math

import pytest
import torch

from zoo.blocks.positions import (
    ALiBi,
    RotaryEmbedding,
    SinusoidalPositions,
    T5RelativeBias,
    alibi_slopes,
    apply_rotary,
    t5_relative_bucket,
)

# --- sinusoidal ---------------------------------------------------------------------------------


def test_sinusoidal_matches_vaswani_formula():
    d, positions = 16, [0, 1, 5, 37, 200]
    pe = SinusoidalPositions(d)(torch.tensor([positions]))[0]
    expected = torch.zeros(len(positions), d)
    for row, p in enumerate(positions):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            expected[row, 2 * i] = math.sin(angle)
            expected[row, 2 * i + 1] = math.cos(angle)
    torch.testing.assert_close(pe, expected, atol=1e-5, rtol=1e-5)


def test_sinusoidal_needs_even_width():
    with pytest.raises(ValueError, match="15"):
        SinusoidalPositions(15)


# --- rotary -------------------------------------------------------------------------------------


def _rotate(x: torch.Tensor, position: int, rotary: RotaryEmbedding) -> torch.Tensor:
    cos, sin = rotary(torch.tensor([[position]]))  # (1, 1, 1, d)
    return apply_rotary(x.view(1, 1, 1, -1), cos, sin).view(-1)


def test_rotary_matches_complex_rotation():
    # Rotate-half layout: dimension i pairs with i + d/2 and turns by p·base^(-2i/d) (Su et al., 2021).
    d, p = 16, 7
    rotary = RotaryEmbedding(d)
    x = torch.randn(d, dtype=torch.float64).float()
    theta = torch.tensor([10000 ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    z = torch.complex(x[: d // 2].double(), x[d // 2 :].double()) * torch.exp(1j * p * theta)
    expected = torch.cat((z.real, z.imag)).float()
    torch.testing.assert_close(_rotate(x, p, rotary), expected, atol=1e-5, rtol=1e-5)


def test_rotary_scores_depend_only_on_relative_offset():
    d = 16
    rotary = RotaryEmbedding(d)
    q, k = torch.randn(d), torch.randn(d)

    def score(m: int, n: int) -> torch.Tensor:
        return _rotate(q, m, rotary) @ _rotate(k, n, rotary)

    for m, n in [(3, 1), (0, 5), (4, 4)]:
        for c in (1, 10, 100):
            torch.testing.assert_close(score(m + c, n + c), score(m, n), atol=1e-4, rtol=1e-4)
    # ...and it does depend on the offset, or the test above proves nothing.
    assert not torch.allclose(score(3, 1), score(5, 1), atol=1e-3)


def test_rotary_preserves_norm():
    d = 16
    rotary = RotaryEmbedding(d)
    x = torch.randn(d)
    for p in (0, 1, 13, 500):
        torch.testing.assert_close(_rotate(x, p, rotary).norm(), x.norm())


def test_rotary_needs_even_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        RotaryEmbedding(7)


# --- ALiBi --------------------------------------------------------------------------------------


def _press_slopes(n: int) -> list[float]:
    """``get_slopes`` of the ALiBi reference code (Press et al., 2022; ofirpress/attention_with_linear_biases)."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + _press_slopes(2 * closest)[0::2][: n - closest]


def test_alibi_slopes_for_eight_heads():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))


def test_alibi_slopes_for_six_heads_follow_the_paper_rule():
    # 4 heads' slopes (2^-2, 2^-4, 2^-6, 2^-8), then every other slope of 8 heads (2^-1, 2^-3).
    expected = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(expected))


@pytest.mark.parametrize("num_heads", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20])
def test_alibi_slopes_match_reference_and_bloom(num_heads):
    ours = alibi_slopes(num_heads)
    torch.testing.assert_close(ours, torch.tensor(_press_slopes(num_heads)))
    bloom_module = pytest.importorskip("transformers.models.bloom.modeling_bloom")  # the hf extra
    build_alibi_tensor = bloom_module.build_alibi_tensor
    # BLOOM's alibi at key position 1 (all keys real) is exactly each head's slope.
    bloom = build_alibi_tensor(torch.ones(1, 3), num_heads, torch.float32)[:, 0, 1]
    torch.testing.assert_close(ours, bloom)


def test_alibi_bias_is_minus_slope_times_distance():
    num_heads, q_pos, k_pos = 4, [2, 3, 4], [0, 1, 2, 3, 4]
    bias = ALiBi(num_heads)(torch.tensor([q_pos]), torch.tensor([k_pos]))
    assert bias.shape == (1, num_heads, 3, 5)
    slopes = alibi_slopes(num_heads)
    for h in range(num_heads):
        for i, qi in enumerate(q_pos):
            for j, kj in enumerate(k_pos):
                assert bias[0, h, i, j].item() == pytest.approx(-slopes[h].item() * abs(qi - kj))


# --- T5 relative bias ---------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 64), (8, 20), (64, 256), (32, 32)])
def test_t5_relative_bucket_matches_hugging_face(bidirectional, num_buckets, max_distance):
    T5Attention = pytest.importorskip("transformers.models.t5.modeling_t5").T5Attention  # the hf extra

    relative = torch.arange(-400, 401)[None, :] + torch.arange(0, 3)[:, None]  # a grid of signed offsets
    ours = t5_relative_bucket(relative, bidirectional, num_buckets, max_distance)
    theirs = T5Attention._relative_position_bucket(
        relative, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    assert torch.equal(ours, theirs)
    assert ours.min() >= 0 and ours.max() < num_buckets


def test_t5_relative_bias_looks_up_bucket_of_key_minus_query():
    module = T5RelativeBias(num_heads=3, bidirectional=True, num_buckets=8, max_distance=16)
    q_pos, k_pos = torch.tensor([[0, 1, 2, 9]]), torch.tensor([[0, 1, 2, 3, 20]])
    bias = module(q_pos, k_pos)
    assert bias.shape == (1, 3, 4, 5)
    for i, qi in enumerate(q_pos[0].tolist()):
        for j, kj in enumerate(k_pos[0].tolist()):
            bucket = t5_relative_bucket(torch.tensor(kj - qi), True, 8, 16)
            torch.testing.assert_close(bias[0, :, i, j], module.embedding.weight[bucket])
