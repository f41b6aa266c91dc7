"""Every switch works in every family: each combination builds and takes one finite training step
that moves every parameter."""

import itertools

import pytest
import torch

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.feed_forward import ACTIVATIONS
from zoo.blocks.norms import NORMS

from .helpers import FAMILIES, POSITIONS, build, logits, loss, random_ids


def _one_step(family: str, **overrides) -> None:
    model = build(family, **overrides).train()
    ids, targets = random_ids(2, 8), random_ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, -2:] = False  # exercise the padding path as well
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    value = loss(model, family, ids, targets, attention_mask=mask)
    value.backward()
    assert torch.isfinite(value), value
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    optimizer.step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(
    ("position", "norm", "placement"), list(itertools.product(POSITIONS, sorted(NORMS), ["pre", "post"]))
)
def test_position_norm_placement(family, position, norm, placement):
    _one_step(family, position=position, norm=norm, norm_placement=placement, activation="gelu")


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation(family, activation):
    _one_step(family, activation=activation)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_attention_heads(family, num_kv_heads):
    model = build(family, num_kv_heads=num_kv_heads)
    attentions = [module for module in model.modules() if isinstance(module, MultiHeadAttention)]
    assert len(attentions) == model.config.num_layers * (3 if family == "t5" else 1)  # T5: enc + dec self + cross
    assert all(module.num_kv_heads == num_kv_heads for module in attentions)
    _one_step(family, num_kv_heads=num_kv_heads, position="rotary")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_dropout_and_untied_head_and_no_bias(family):
    _one_step(family, dropout=0.1, tie_embeddings=False, bias=False)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("position", ["alibi", "relative", "rotary"])
def test_bf16_autocast_forward_is_finite(family, position):
    # Float position biases meet bf16 queries here: their dtypes must be reconciled inside attention.
    model = build(family, position=position).eval()
    ids = random_ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, -3:] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logits(model, family, ids, mask)
    assert torch.isfinite(out).all()
