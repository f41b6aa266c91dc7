"""Mixture-of-experts feed-forward against a per-token loop written from the definition, and its
load-balancing loss against the closed form."""

import pytest
import torch

from zoo.blocks.feed_forward import ACTIVATIONS, FeedForward
from zoo.blocks.moe import MixtureOfExperts, load_balancing_loss

E, F = 16, 24


def _moe(num_experts: int = 4, top_k: int = 2, activation: str = "swiglu") -> MixtureOfExperts:
    return MixtureOfExperts([FeedForward(E, F, activation) for _ in range(num_experts)], E, top_k=top_k)


def _per_token(moe: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """Each token alone: softmax over experts, its top k, weights renormalised (k > 1)."""
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            token = x[b, t]
            probs = (moe.router.weight @ token).softmax(dim=-1)
            top = probs.topk(moe.top_k)
            weights = top.values / top.values.sum() if moe.top_k > 1 else top.values
            for weight, index in zip(weights, top.indices, strict=True):
                out[b, t] += weight * moe.experts[int(index)](token)
    return out


@pytest.mark.parametrize(("num_experts", "top_k"), [(4, 1), (4, 2), (3, 3), (8, 2)])
def test_moe_equals_routing_each_token_by_hand(num_experts, top_k):
    moe = _moe(num_experts, top_k)
    x = torch.randn(2, 7, E)
    torch.testing.assert_close(moe(x), _per_token(moe, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_experts_work_with_every_activation(activation):
    moe = _moe(activation=activation)
    x = torch.randn(2, 5, E)
    torch.testing.assert_close(moe(x), _per_token(moe, x), atol=1e-5, rtol=1e-5)


def test_every_part_gets_a_gradient():
    moe = _moe()
    x = torch.randn(4, 8, E)  # 32 tokens × 2 slots over 4 experts: each expert is chosen
    (moe(x).square().sum() + moe.aux_loss).backward()
    for name, p in moe.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_top_one_routing_keeps_the_router_probability_so_the_router_learns():
    moe = _moe(top_k=1)
    x = torch.randn(2, 6, E)
    moe(x).sum().backward()  # no auxiliary loss: the gradient comes through the mixing weight
    assert moe.router.weight.grad.abs().sum() > 0


def test_load_balancing_loss_closed_form():
    n, experts, k = 12, 4, 2
    uniform = torch.full((n, experts), 1 / experts)
    even = torch.full((experts,), n * k // experts)
    assert load_balancing_loss(uniform, even) == pytest.approx(k)  # balanced routing gives k
    # Every token picks experts 0 and 1 and puts all its probability on 0: E · f_0 · P_0 = E · 1 · 1.
    skewed = torch.zeros(n, experts)
    skewed[:, 0] = 1.0
    counts = torch.tensor([n, n, 0, 0])
    assert load_balancing_loss(skewed, counts) == pytest.approx(experts * 1.0 * 1.0)


def test_aux_loss_is_set_by_each_forward_and_matches_the_formula():
    moe = _moe(8, 2)
    x = torch.randn(3, 5, E)
    moe(x)
    probs = (x.reshape(-1, E) @ moe.router.weight.T).softmax(dim=-1)
    chosen = probs.topk(2).indices
    fraction = torch.stack([(chosen == e).any(dim=-1).float().mean() for e in range(8)])
    torch.testing.assert_close(moe.aux_loss, 8 * (fraction * probs.mean(dim=0)).sum())


def test_bad_top_k_is_one_line():
    with pytest.raises(ValueError, match=r"top_k=5 must be between 1 and the number of experts \(4\)"):
        _moe(4, 5)
