"""The modern switches (QK-norm, sliding window, mixture of experts, parallel residual, partial
rotary, softcapping, ReLU²) in every family: each trains, decodes with the cache as without it,
and refuses bad values in one line."""

import pytest
import torch

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.moe import MixtureOfExperts
from zoo.models import GPTConfig

from .helpers import FAMILIES, build, config, logits, random_ids
from .test_options import _one_step

ATOL = 1e-5
SWITCHES = {
    "qk_rmsnorm": dict(qk_norm="rmsnorm"),
    "qk_layernorm": dict(qk_norm="layernorm"),
    "sliding_window": dict(sliding_window=3),
    "local_global": dict(sliding_window=3, global_layer_every=2),
    "moe": dict(num_experts=4, experts_per_token=2),
    "moe_top1": dict(num_experts=4, experts_per_token=1),
    "parallel": dict(residual="parallel", norm_placement="pre"),  # BERT is post-norm by default
    "partial_rotary": dict(position="rotary", rotary_fraction=0.5),
    "attention_softcap": dict(attention_softcap=5.0),
    "logit_softcap": dict(logit_softcap=5.0),
    "relu2": dict(activation="relu2"),
    "sandwich": dict(norm_placement="sandwich", norm="rmsnorm_plus_one"),  # Gemma 2's norms
    "all": dict(qk_norm="rmsnorm", sliding_window=3, global_layer_every=2, num_experts=4, residual="parallel",
                norm_placement="pre", position="rotary", rotary_fraction=0.5, attention_softcap=5.0, logit_softcap=5.0,
                activation="relu2", num_kv_heads=2),
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("switch", list(SWITCHES))
def test_every_switch_trains_in_every_family(family, switch):
    _one_step(family, **SWITCHES[switch])


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("switch", ["sliding_window", "qk_rmsnorm", "moe", "parallel", "attention_softcap",
                                    "logit_softcap", "partial_rotary", "sandwich"])
def test_every_switch_changes_the_function(family, switch):
    """A switch that silently did nothing would pass every other test."""
    # Wider weights than the default init, so that scores and logits are large enough for a cap to bind.
    plain, switched = build(family, init_std=0.2).eval(), build(family, init_std=0.2, **SWITCHES[switch]).eval()
    plain.load_state_dict(switched.state_dict(), strict=False)
    ids = random_ids(2, 12)
    with torch.no_grad():
        assert not torch.allclose(logits(plain, family, ids), logits(switched, family, ids), atol=1e-4)


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_gpt_cached_decoding_equals_full_forward_past_the_window(switch):
    model = build("gpt", **SWITCHES[switch]).eval()
    ids = random_ids(2, 12)  # four times the window of 3
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        steps = [model(ids[:, i : i + 1], cache=cache) for i in range(ids.shape[1])]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-5)
        cache = model.new_cache()
        chunks = [model(ids[:, :5], cache=cache), model(ids[:, 5:6], cache=cache), model(ids[:, 6:], cache=cache)]
        torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_t5_cached_decoding_equals_full_decode(switch):
    model = build("t5", **SWITCHES[switch]).eval()
    src, dec = random_ids(2, 7), random_ids(2, 10)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, -3:] = False
    with torch.no_grad():
        encoded = model.encode(src, mask)
        full = model.decode(dec, encoded, mask)
        cache = model.new_cache()
        steps = [model.decode(dec[:, i : i + 1], encoded, mask, cache=cache) for i in range(dec.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("switch", ["sliding_window", "local_global", "all"])
def test_windowed_left_padded_batch_equals_each_prompt_alone(switch):
    model = build("gpt", **SWITCHES[switch]).eval()
    prompts = [random_ids(9), random_ids(4), random_ids(6)]
    width = max(len(p) for p in prompts)
    ids = torch.stack([torch.cat((torch.full((width - len(p),), 1), p)) for p in prompts])
    mask = torch.stack([torch.arange(width) >= width - len(p) for p in prompts])
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        last = model(ids, mask, position_ids=position_ids)[:, -1]
        for row, prompt in enumerate(prompts):
            torch.testing.assert_close(last[row], model(prompt[None])[0, -1], atol=ATOL, rtol=1e-5)


def test_window_pattern_and_the_cache_each_layer_keeps():
    model = build("gpt", num_layers=4, sliding_window=3, global_layer_every=2).eval()
    windows = [layer.self_attn.window for layer in model.decoder.layers]
    assert windows == [3, None, 3, None]  # every second layer global, as Gemma 2
    cache = model.new_cache()
    with torch.no_grad():
        model(random_ids(2, 10), cache=cache)
        model(random_ids(2, 1), cache=cache)
    assert [layer.self_attn.seq_len for layer in cache.layers] == [2, 11, 2, 11]
    assert cache.seq_len == 11


def test_aux_loss_is_the_weighted_mean_over_every_moe_layer():
    assert build("gpt").aux_loss() is None
    for family in FAMILIES:
        model = build(family, num_experts=4, moe_aux_loss_weight=0.5)
        ids = random_ids(2, 8)
        logits(model, family, ids)
        layers = [m for m in model.modules() if isinstance(m, MixtureOfExperts)]
        assert len(layers) == model.config.num_layers * (2 if family == "t5" else 1)
        expected = 0.5 * torch.stack([m.aux_loss for m in layers]).mean()
        torch.testing.assert_close(model.aux_loss(), expected)
        assert model.aux_loss().requires_grad


def test_switches_reach_their_blocks():
    model = build("t5", qk_norm="layernorm", attention_softcap=7.0, sliding_window=4, num_experts=3,
                  experts_per_token=3)
    attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    assert all(m.q_norm is not None and m.softcap == 7.0 for m in attentions)
    assert {m.window for m in attentions if m.cross_attention} == {None}  # cross-attention is not positional
    assert {m.window for m in attentions if not m.cross_attention} == {4}
    moes = [m for m in model.modules() if isinstance(m, MixtureOfExperts)]
    assert len(moes) == 4 and all(len(m.experts) == 3 and m.top_k == 3 for m in moes)


def test_architecture_lists_only_switches_in_use():
    plain = GPTConfig().architecture()
    assert "experts_per_token" not in plain and "global_layer_every" not in plain
    assert "moe_aux_loss_weight" not in GPTConfig(num_experts=4).architecture()  # a training choice
    assert GPTConfig(num_experts=4, moe_aux_loss_weight=0.1).architecture() == GPTConfig(num_experts=4).architecture()
    assert GPTConfig(num_experts=4).architecture()["experts_per_token"] == 2


@pytest.mark.parametrize(("fields", "message"), [
    (dict(sliding_window=0), r"sliding_window=0 must be a positive number of tokens"),
    (dict(sliding_window=-4), r"sliding_window=-4 must be a positive"),
    (dict(global_layer_every=2), r"global_layer_every=2 needs a sliding_window"),
    (dict(sliding_window=8, global_layer_every=0), r"global_layer_every=0 must be a positive integer"),
    (dict(num_experts=4, experts_per_token=5), r"experts_per_token=5 must be between 1 and num_experts=4"),
    (dict(num_experts=4, experts_per_token=0), r"experts_per_token=0 must be between 1 and num_experts=4"),
    (dict(num_experts=1), r"num_experts=1 must be >= 2 \(null = a dense feed-forward\)"),
    (dict(moe_aux_loss_weight=-0.1), r"moe_aux_loss_weight=-0.1 must be >= 0"),
    (dict(attention_softcap=0.0), r"attention_softcap=0.0 must be > 0"),
    (dict(logit_softcap=-30.0), r"logit_softcap=-30.0 must be > 0"),
    (dict(position="rotary", rotary_fraction=0.0), r"rotary_fraction=0.0 must be in \(0, 1\]"),
    (dict(position="rotary", rotary_fraction=1.5), r"rotary_fraction=1.5 must be in \(0, 1\]"),
    (dict(position="rotary", rotary_fraction=0.125), r"rotary_fraction=0.125 of head_dim=8 gives 1 rotary dimensions"),
    (dict(position="rotary", rotary_fraction=0.3), r"gives 2.4 rotary dimensions; it must give a whole, even number"),
    (dict(position="learned", rotary_fraction=0.5), r"rotary_fraction=0.5 needs position='rotary'"),
    (dict(residual="parallel", norm_placement="post"), r"residual='parallel' needs norm_placement='pre' or 'sandwich'"),
    (dict(norm_placement="middle"), r"norm_placement='middle' must be 'pre', 'post' or 'sandwich'"),
    (dict(residual="ladder"), r"residual='ladder' must be 'sequential' or 'parallel'"),
    (dict(qk_norm="batchnorm"), r"qk_norm='batchnorm' is not one of"),
])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_bad_values_are_refused_in_one_line(family, fields, message):
    with pytest.raises(ValueError, match=message) as error:
        config(family, **fields)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_all_switches_under_bf16_autocast_and_in_pure_bf16(family):
    """bf16 queries meet float32 QK-norm weights, router softmax and softcaps: dtypes must reconcile."""
    fields = dict(SWITCHES["all"], norm_placement="sandwich", norm="rmsnorm_plus_one")
    ids = random_ids(2, 9)
    model = build(family, **fields)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logits(model, family, ids)
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(logits(build(family, **fields).to(torch.bfloat16), family, ids)).all()
