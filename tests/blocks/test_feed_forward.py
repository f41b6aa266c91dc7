"""Feed-forward blocks against their formulas, computed from the module's own weights."""

import math

import pytest
import torch

from tests.blocks.helpers import recording_backend
from zoo.blocks.feed_forward import ACTIVATIONS, FeedForward, default_ffn_dim


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


# name -> (activation written out by hand, gated?)
REFERENCE = {
    "relu": (lambda x: x.clamp(min=0), False),
    "relu2": (lambda x: x.clamp(min=0) * x.clamp(min=0), False),
    "gelu": (_gelu, False),
    "gelu_tanh": (_gelu_tanh, False),
    "swiglu": (lambda x: x * torch.sigmoid(x), True),
    "geglu": (_gelu, True),
    "geglu_tanh": (_gelu_tanh, True),
}


def _linear(x, layer):
    out = x @ layer.weight.T
    return out if layer.bias is None else out + layer.bias


def test_every_activation_has_a_reference():
    assert set(REFERENCE) == set(ACTIVATIONS)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", sorted(REFERENCE))
def test_feed_forward_matches_formula(activation, bias):
    act, gated = REFERENCE[activation]
    ffn = FeedForward(embed_dim=16, ffn_dim=24, activation=activation, bias=bias)
    with torch.no_grad():
        for p in ffn.parameters():
            p.normal_(std=0.5)
    x = torch.randn(2, 5, 16)
    if gated:
        hidden = act(_linear(x, ffn.gate_proj)) * _linear(x, ffn.up_proj)
    else:
        assert ffn.gate_proj is None
        hidden = act(_linear(x, ffn.up_proj))
    expected = _linear(hidden, ffn.down_proj)
    torch.testing.assert_close(ffn(x), expected, atol=1e-5, rtol=1e-5)
    assert any(p.ndim == 1 for p in ffn.parameters()) == bias


def test_unknown_activation_names_value_and_choices():
    with pytest.raises(ValueError) as err:
        FeedForward(16, 32, activation="mish")
    assert "mish" in str(err.value)
    for name in ACTIVATIONS:
        assert name in str(err.value)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("embed_dim", [32, 48, 100])
def test_default_ffn_dim_plain_is_four_times_width(activation, embed_dim):
    assert default_ffn_dim(embed_dim, activation) == 4 * embed_dim


@pytest.mark.parametrize(("embed_dim", "expected"), [(32, 88), (48, 128), (64, 176), (100, 272)])
def test_default_ffn_dim_gated_is_two_thirds_rounded_up_to_8(embed_dim, expected):
    # floor(8·d/3) rounded up to a multiple of 8: 85 -> 88, 128 -> 128, 170 -> 176, 266 -> 272.
    for activation in ("swiglu", "geglu", "geglu_tanh"):
        ffn_dim = default_ffn_dim(embed_dim, activation)
        assert ffn_dim == expected
        # Three gated matrices hold about as many weights as the two plain ones.
        assert abs(3 * embed_dim * ffn_dim - 2 * embed_dim * 4 * embed_dim) <= 3 * embed_dim * 8


def _traced_ops(fn, x):
    """The aten ops ``torch.compile`` traces for ``fn(x)`` (forward and backward), and the result."""
    ops = set()
    torch._dynamo.reset()
    out = torch.compile(fn, backend=recording_backend(ops), fullgraph=True)(x)
    out.float().sum().backward()
    return ops, out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_tanh_gelu_on_cpu_is_the_sigmoid_form_with_the_same_values_and_gradients(dtype):
    from zoo.blocks.feed_forward import GELU

    x = (torch.randn(4, 257, dtype=torch.float64) * 3).to(dtype)
    reference = x.double().requires_grad_()
    torch.nn.functional.gelu(reference, approximate="tanh").sum().backward()
    leaf = x.clone().requires_grad_()
    ops, out = _traced_ops(GELU(approximate="tanh"), leaf)
    assert any("sigmoid" in op for op in ops) and not any("tanh" in op or "gelu" in op for op in ops), ops
    # Within one rounding of the output dtype of the float64 values (the eager kernel's own accuracy).
    eager = GELU(approximate="tanh")(x)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-2, rtol=8e-3)
    torch.testing.assert_close(out.double(), torch.nn.functional.gelu(x.double(), approximate="tanh"), **tol)
    torch.testing.assert_close(out, eager, **tol)
    torch.testing.assert_close(leaf.grad.double(), reference.grad, **tol)


def test_gelu_keeps_its_kernel_eager_and_for_the_exact_form():
    from zoo.blocks.feed_forward import GELU

    x = torch.randn(3, 7)
    expected = torch.nn.functional.gelu(x, approximate="tanh")
    torch.testing.assert_close(GELU(approximate="tanh")(x), expected, atol=0, rtol=0)
    ops, _ = _traced_ops(GELU(), x.clone().requires_grad_())
    assert any("gelu" in op for op in ops) and not any("sigmoid" in op for op in ops), ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["relu", "relu2"])
def test_compiled_relus_on_cpu_have_a_mask_free_backward_with_the_same_gradients(name, dtype):
    act = ACTIVATIONS[name][0]()
    reference_act = {"relu": torch.relu, "relu2": lambda x: torch.relu(x).square()}[name]  # eager, gradient 0 at 0
    x = torch.randn(4, 257, dtype=dtype)
    x[0, :5] = 0.0  # relu's kink: gradient 0 there, as torch.relu's
    reference = x.clone().requires_grad_()
    reference_act(reference).sum().backward()
    leaf = x.clone().requires_grad_()
    ops, out = _traced_ops(act, leaf)
    assert not ops & {"threshold_backward", "le", "gt", "where"}, ops
    torch.testing.assert_close(out, reference_act(x), atol=0, rtol=0)
    torch.testing.assert_close(leaf.grad, reference.grad, atol=0, rtol=0)
