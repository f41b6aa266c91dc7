"""token_cross_entropy (zoo.tasks.losses) against F.cross_entropy on float32 copies of the logits."""

import pytest
import torch
import torch.nn.functional as F

from zoo.tasks.losses import token_cross_entropy


@pytest.fixture(params=["eager", "compiled"])
def cross_entropy(request):
    """token_cross_entropy as it runs eager (the block-wise loop) and under torch.compile (CPU)."""
    if request.param == "eager":
        return token_cross_entropy
    torch._dynamo.reset()
    return torch.compile(token_cross_entropy, fullgraph=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("ignored", [0, 7])
def test_loss_and_gradient_equal_float32_cross_entropy(cross_entropy, dtype, ignored):
    logits = (torch.randn(300, 1000) * 4).to(dtype).requires_grad_()  # 300 rows: several blocks and a ragged end
    labels = torch.randint(0, 1000, (300,))
    labels[::ignored or 301] = -100
    expected = F.cross_entropy(logits.float(), labels)
    (expected_grad,) = torch.autograd.grad(expected * 3.0, logits)
    loss = cross_entropy(logits, labels)
    (grad,) = torch.autograd.grad(loss * 3.0, logits)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-5)
    # bf16: both are float32 values rounded once to bf16 (at most one unit in the last place apart).
    tolerance = dict(rtol=1e-5, atol=1e-9) if dtype == torch.float32 else dict(rtol=8e-3, atol=1e-7)
    torch.testing.assert_close(grad, expected_grad, **tolerance)
    if ignored:
        assert not grad[::ignored].any()


def test_confident_targets_keep_their_gradient_in_bf16(cross_entropy):
    """p_target ≈ 1: the target entry is p - 1 from float32, not 0 from a bf16 p rounded to 1."""
    logits = torch.zeros(4, 50)
    logits[:, 3] = 9.0  # p_target ≈ 0.994
    logits = logits.bfloat16().requires_grad_()
    labels = torch.full((4,), 3)
    cross_entropy(logits, labels).backward()
    expected = (torch.softmax(logits.detach().float(), -1)[:, 3] - 1) / 4
    torch.testing.assert_close(logits.grad[:, 3].float(), expected, rtol=8e-3, atol=0)


def test_nothing_scored_is_nan_like_cross_entropy(cross_entropy):
    logits = torch.randn(5, 11, requires_grad=True)
    labels = torch.full((5,), -100)
    assert torch.isnan(F.cross_entropy(logits, labels)) and torch.isnan(cross_entropy(logits, labels))
    cross_entropy(logits, labels).backward()  # no ZeroDivisionError: zero gradients, as PyTorch's
    assert torch.equal(logits.grad, torch.zeros_like(logits))
