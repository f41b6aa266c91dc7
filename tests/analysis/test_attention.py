"""capture_attention: the weights it records are the ones the fused kernel used, in every family."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.helpers import build, random_ids, run
from zoo.analysis import attention_entropy, attention_weights, capture_attention
from zoo.blocks.attention import ATTENTION_FUNCTIONS, MultiHeadAttention, eager_attention
from zoo.generation import generate

POSITIONS = ["none", "learned", "sinusoidal", "rotary", "alibi", "relative"]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("scale", [None, 1.0])
def test_weights_times_values_is_the_eager_reference(is_causal, mask_kind, kv_heads, scale):
    b, h, t, d = 2, 4, 5, 8
    q, k, v = torch.randn(b, h, t, d), torch.randn(b, kv_heads, t, d), torch.randn(b, kv_heads, t, d)
    mask = {"none": None, "bool": torch.rand(b, 1, t, t) > 0.3, "float": torch.randn(b, h, t, t)}[mask_kind]
    if mask_kind == "bool":
        mask[..., 0] = True  # every row sees a key
    gqa = kv_heads != h
    weights = attention_weights(q, k, mask, is_causal, scale, gqa)
    expected = eager_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=gqa)
    assert torch.allclose(weights @ v.repeat_interleave(h // kv_heads, dim=1), expected, atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(b, h, t))
    if is_causal:
        assert (weights.triu(diagonal=1) == 0).all()


def spy_on_kernels(model):
    """Wrap every attention kernel so the test sees each call's values and output (captured inside it)."""
    seen = []
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            kernel = module.attention_fn

            def spy(q, k, v, *args, _kernel=kernel, _module=module, **kwargs):
                out = _kernel(q, k, v, *args, **kwargs)
                seen.append((_module, v.detach(), out.detach()))
                return out

            module.attention_fn = spy
    return seen


@pytest.mark.parametrize("family,position", [("gpt", p) for p in POSITIONS] + [("bert", "learned"), ("t5", "relative"),
                                                                             ("gpt", "rotary-gqa")])
def test_captured_weights_reproduce_the_sdpa_output(family, position):
    """For every call, captured weights @ V equals what the SDPA kernel returned: position biases,
    rotary, padding and causality are all in the recorded map."""
    position, _, variant = position.partition("-")
    model = build(family, position=position, **({"num_kv_heads": 2} if variant == "gqa" else {}))
    assert all(m.attention_fn is ATTENTION_FUNCTIONS["sdpa"] for m in model.modules()
               if isinstance(m, MultiHeadAttention))
    ids = random_ids(2, 7)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False  # padding in the second row
    reference = run(model, ids, mask)
    seen = spy_on_kernels(model)
    with capture_attention(model) as maps:
        out = run(model, ids, mask)
    assert torch.equal(out, reference)  # capturing changes nothing
    recorded = [w for calls in maps.calls.values() for w in calls]
    assert len(recorded) == len(seen) == sum(isinstance(m, MultiHeadAttention) for m in model.modules())
    names = {id(m): n for n, m in model.named_modules()}
    for module, v, kernel_out in seen:
        weights = maps[names[id(module)]]
        groups = module.num_heads // module.num_kv_heads
        assert torch.allclose(weights @ v.repeat_interleave(groups, dim=1), kernel_out, atol=1e-5)
        decoder_self = family == "t5" and names[id(module)].startswith("decoder.") and not module.cross_attention
        if not decoder_self:  # T5's decoder got no padding mask here; the rest did
            assert (weights[1, :, :5, 5:] == 0).all()  # no real token attends to padding


@pytest.mark.parametrize("options", [dict(softcap=2.0), dict(window=3), dict(window=2, softcap=1.5),
                                     dict(num_kv_heads=1, window=4)])
def test_capture_of_softcapped_and_windowed_attention(options):
    """A softcapped block runs eager with the cap bound in; a windowed one folds the window into its mask.
    The captured weights are those the kernel used either way."""
    attention = MultiHeadAttention(embed_dim=16, num_heads=4, **options).eval()
    model = torch.nn.ModuleDict({"attn": attention})
    x = torch.randn(2, 6, 16) * 3
    seen = spy_on_kernels(model)
    with capture_attention(model) as maps:
        out = attention(x, is_causal=True)
    (_, v, kernel_out), weights = seen[0], maps["attn"]
    assert torch.allclose(weights @ v.repeat_interleave(4 // attention.num_kv_heads, dim=1), kernel_out, atol=1e-5)
    assert torch.allclose(out, attention(x, is_causal=True))
    if "window" in options:
        far = torch.ones(6, 6, dtype=torch.bool).tril(diagonal=-options["window"])
        assert (weights[..., far] == 0).all() and (weights.triu(diagonal=1) == 0).all()


def test_causal_maps_and_padding():
    model = build("gpt", position="rotary")
    with capture_attention(model) as maps:
        model(random_ids(1, 6))
    weights = maps.layers(prefix="decoder.")  # (layers, b, h, t, s)
    assert weights.shape == (2, 1, 4, 6, 6)
    assert torch.allclose(weights[..., 0, 0], torch.ones(2, 1, 4))  # the first token sees only itself
    assert (weights.triu(diagonal=1) == 0).all()
    assert (weights[..., -1, :] > 0).all()  # the last sees every token

    bert = build("bert")
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    with capture_attention(bert) as maps:
        bert(random_ids(1, 6), mask)
    weights = maps.layers(prefix="encoder.")
    assert (weights[..., :4, 4:] == 0).all()  # nobody attends to padding
    later = torch.ones(4, 4, dtype=torch.bool).triu(diagonal=1)
    assert (weights[..., :4, :4][..., later] > 0).all()  # bidirectional: real tokens see later ones


def test_t5_records_encoder_decoder_and_cross_attention():
    model = build("t5")
    with capture_attention(model) as maps:
        model(random_ids(2, 7), random_ids(2, 4))
    assert maps.layers(prefix="encoder.").shape == (2, 2, 4, 7, 7)
    assert maps.layers("self_attn", prefix="decoder.").shape == (2, 2, 4, 4, 4)
    assert maps.layers("cross_attn", prefix="decoder.").shape == (2, 2, 4, 4, 7)


def test_capture_during_cached_generation_and_restores_kernels():
    model = build("gpt")
    prompt = random_ids(1, 3)
    with capture_attention(model) as maps:
        generate(model, prompt, max_new_tokens=4, eos_token_id=None)
    calls = maps.calls["decoder.layers.0.self_attn"]
    assert [c.shape[-2:] for c in calls] == [(3, 3), (1, 4), (1, 5), (1, 6)]  # prompt, then one query a step
    assert all(m.attention_fn is ATTENTION_FUNCTIONS["sdpa"] for m in model.modules()
               if isinstance(m, MultiHeadAttention))
    with pytest.raises(KeyError, match="no attention recorded"):
        maps["nope"]


def test_capture_needs_attention_modules():
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        with capture_attention(torch.nn.Linear(2, 2)):
            pass


def test_attention_entropy_closed_forms():
    uniform = torch.full((3, 4), 0.25)
    one_hot = torch.eye(4)
    assert torch.allclose(attention_entropy(uniform), torch.full((3,), torch.log(torch.tensor(4.0))))
    assert torch.allclose(attention_entropy(one_hot), torch.zeros(4), atol=1e-6)
