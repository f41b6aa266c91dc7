"""Separate q/k/v projections that still run as one matmul: equal to calling each, gradients reach
each, the no-grad stack follows weight updates, adapters see each module, and checkpoints of the
fused layout (``qkv_proj``, ``kv_proj``) load with equal outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.blocks.attention import MultiHeadAttention

E, H, B, T = 32, 4, 2, 5
QKV = ("q_proj", "k_proj", "v_proj")


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("grad", [True, False])
def test_one_matmul_equals_each_projection(num_kv_heads, grad):
    module = MultiHeadAttention(E, H, num_kv_heads=num_kv_heads)
    x = torch.randn(B, T, E)
    with torch.set_grad_enabled(grad):
        stacked = module.project(x, QKV)
    each = torch.cat([getattr(module, name)(x) for name in QKV], dim=-1)
    torch.testing.assert_close(stacked, each, rtol=1e-6, atol=1e-6)


def test_gradients_reach_every_projection():
    module = MultiHeadAttention(E, H, num_kv_heads=2)
    module(torch.randn(B, T, E), is_causal=True).sum().backward()
    assert all(getattr(module, name).weight.grad.abs().sum() > 0 for name in (*QKV, "out_proj"))


def test_the_no_grad_stack_follows_in_place_updates_and_new_weights():
    module = MultiHeadAttention(E, H).eval()
    x = torch.randn(B, T, E)
    with torch.no_grad():
        first = module(x)
        assert torch.equal(module(x), first)  # the kept stack
        module.v_proj.weight.mul_(2)  # an optimizer step's in-place update
        updated = module(x)
        module.k_proj.weight = nn.Parameter(torch.randn_like(module.k_proj.weight))  # a new tensor
        replaced = module(x)
    assert not torch.equal(updated, first) and not torch.equal(replaced, updated)
    with torch.no_grad():
        assert torch.equal(module(x), replaced)
    torch.testing.assert_close(module(x), replaced)  # the autograd path agrees with the kept stack


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_fused_checkpoints_load_with_equal_outputs(cross):
    module = MultiHeadAttention(E, H, num_kv_heads=2, cross_attention=cross).eval()
    state = module.state_dict()
    names = QKV[1:] if cross else QKV
    fused = "kv_proj" if cross else "qkv_proj"
    old = {k: v for k, v in state.items() if not k.startswith(names)}
    for kind in ("weight", "bias"):
        old[f"{fused}.{kind}"] = torch.cat([state[f"{n}.{kind}"] for n in names])
    fresh = MultiHeadAttention(E, H, num_kv_heads=2, cross_attention=cross).eval()
    fresh.load_state_dict(old)
    x, context = torch.randn(B, T, E), torch.randn(B, 7, E)
    args = (x, context) if cross else (x,)
    assert torch.equal(fresh(*args), module(*args))


def test_a_mis_shaped_fused_tensor_is_reported_by_name():
    module = MultiHeadAttention(E, H)
    state = {k: v for k, v in module.state_dict().items() if not k.startswith(QKV)}
    state["qkv_proj.weight"] = torch.zeros(3 * E + 1, E)
    with pytest.raises(RuntimeError, match="qkv_proj.weight"):
        module.load_state_dict(state)


def test_an_adapter_on_one_projection_is_applied():
    peft = pytest.importorskip("peft")
    module = MultiHeadAttention(E, H).eval()
    x = torch.randn(B, T, E)
    before = module(x)
    peft.inject_adapter_in_model(peft.LoraConfig(r=2, target_modules=["v_proj"], init_lora_weights=False), module)
    assert type(module.v_proj) is not nn.Linear and type(module.q_proj) is nn.Linear
    with torch.no_grad():
        assert not torch.allclose(module(x), before)  # a non-zero LoRA update changes the output
