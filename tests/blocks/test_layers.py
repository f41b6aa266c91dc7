"""Layers and the stack: residual wiring by hand from the sub-modules, and position routing."""

import pytest
import torch

from zoo.blocks.feed_forward import FeedForward
from zoo.blocks.layers import DecoderLayer, EncoderLayer
from zoo.blocks.stack import StackCache, TransformerStack
from zoo.models import GPTConfig
from zoo.models.builders import attention_block, transformer_layer, transformer_stack

E, H = 32, 4


def _randomise_norms(module: torch.nn.Module) -> None:
    # Unit weights / zero biases would let a swapped or missing norm go unnoticed.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.normal_()


def _config(**fields) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 16, "embed_dim": E, "num_heads": H, "ffn_dim": 48, "dropout": 0.0, **fields})


def _layer(cls, placement: str, norm: str = "layernorm"):
    config = _config(num_kv_heads=2, norm=norm, norm_placement=placement)
    layer = transformer_layer(config, cross_attention=cls is DecoderLayer)
    assert type(layer) is cls
    _randomise_norms(layer)
    return layer.eval()


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_pre_norm_encoder_layer(norm):
    layer = _layer(EncoderLayer, "pre", norm)
    x = torch.randn(2, 6, E)
    h = x + layer.self_attn(layer.self_attn_norm(x), is_causal=True)
    expected = h + layer.ffn(layer.ffn_norm(h))
    torch.testing.assert_close(layer(x, is_causal=True), expected)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_post_norm_encoder_layer(norm):
    layer = _layer(EncoderLayer, "post", norm)
    x = torch.randn(2, 6, E)
    h = layer.self_attn_norm(x + layer.self_attn(x))
    expected = layer.ffn_norm(h + layer.ffn(h))
    torch.testing.assert_close(layer(x), expected)


def test_pre_norm_decoder_layer():
    layer = _layer(DecoderLayer, "pre")
    x, context = torch.randn(2, 5, E), torch.randn(2, 7, E)
    context_mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    context_mask[0, ..., -2:] = False
    h = x + layer.self_attn(layer.self_attn_norm(x), is_causal=True)
    h = h + layer.cross_attn(layer.cross_attn_norm(h), context, mask=context_mask)
    expected = h + layer.ffn(layer.ffn_norm(h))
    torch.testing.assert_close(layer(x, context, context_mask=context_mask), expected)


def test_post_norm_decoder_layer():
    layer = _layer(DecoderLayer, "post")
    x, context = torch.randn(2, 5, E), torch.randn(2, 7, E)
    h = layer.self_attn_norm(x + layer.self_attn(x, is_causal=True))
    h = layer.cross_attn_norm(h + layer.cross_attn(h, context))
    expected = layer.ffn_norm(h + layer.ffn(h))
    torch.testing.assert_close(layer(x, context), expected)


def test_invalid_norm_placement():
    norm = torch.nn.LayerNorm(E)
    with pytest.raises(ValueError, match="middle"):
        EncoderLayer(MultiHeadAttentionOf(), FeedForward(E, 48), self_attn_norm=norm, ffn_norm=norm,
                     norm_placement="middle")


def test_decoder_layer_needs_a_cross_attention_block():
    norm = torch.nn.LayerNorm(E)
    with pytest.raises(ValueError, match="cross_attention=True"):
        DecoderLayer(MultiHeadAttentionOf(), MultiHeadAttentionOf(), FeedForward(E, 48), self_attn_norm=norm,
                     cross_attn_norm=norm, ffn_norm=norm)


def MultiHeadAttentionOf():  # noqa: N802 - reads as the class it builds
    return attention_block(_config())


# --- stack ----------------------------------------------------------------------------------------


def _stack(position: str, causal: bool = False, **fields) -> TransformerStack:
    config = _config(**{"num_layers": 2, "max_seq_len": 8, "position": position, **fields})
    return transformer_stack(config, causal=causal).eval()


def test_learned_positions_reject_longer_sequences():
    stack = _stack("learned", max_seq_len=8)
    stack(torch.randn(1, 8, E))  # the longest allowed
    with pytest.raises(ValueError, match="max_seq_len=8"):
        stack(torch.randn(1, 9, E))


def test_learned_positions_reject_cache_growing_past_max_seq_len():
    stack = _stack("learned", max_seq_len=8, causal=True)
    cache = StackCache(2)
    stack(torch.randn(1, 6, E), cache=cache)
    with pytest.raises(ValueError, match="max_seq_len=8"):
        stack(torch.randn(1, 3, E), cache=cache)


@pytest.mark.parametrize("position", ["rotary", "alibi", "relative", "sinusoidal", "none"])
def test_other_positions_are_not_limited_by_max_seq_len(position):
    assert _stack(position, max_seq_len=8)(torch.randn(1, 12, E)).shape == (1, 12, E)


def test_unknown_position_names_value():
    with pytest.raises(ValueError, match="'xpos'"):
        _stack("xpos")


def test_stack_refuses_a_module_that_is_no_position_scheme():
    with pytest.raises(ValueError, match="Linear has no kind"):
        TransformerStack([], torch.nn.Linear(2, 2))


@pytest.mark.parametrize("placement", ["pre", "post"])
@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_absolute_positions_are_added_to_embeddings(position, placement):
    stack = _stack(position, norm_placement=placement, scale_embedding=False)
    plain = _stack("none", norm_placement=placement)
    _randomise_norms(stack)
    plain.load_state_dict(stack.state_dict(), strict=False)
    x, positions = torch.randn(2, 6, E), torch.arange(6)[None]
    expected = plain(x + stack.absolute_positions(positions))
    torch.testing.assert_close(stack(x), expected)


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary"])
def test_embed_scale_multiplies_embeddings_before_positions(position):
    scaled = _stack(position, scale_embedding=True)
    plain = _stack(position, scale_embedding=False)
    plain.load_state_dict(scaled.state_dict())
    x, positions = torch.randn(2, 6, E), torch.arange(6)[None]
    factor = E**0.5
    if scaled.absolute_positions is None:
        torch.testing.assert_close(scaled(x), plain(factor * x))
    else:  # the positions are added unscaled
        expected = _stack("none")
        expected.load_state_dict(scaled.state_dict(), strict=False)
        torch.testing.assert_close(scaled(x), expected(factor * x + scaled.absolute_positions(positions)))


def test_scale_embedding_defaults_to_the_sinusoidal_recipe():
    from zoo.models import T5Config

    assert GPTConfig(position="sinusoidal").resolved_scale_embedding
    assert not any(GPTConfig(position=p).resolved_scale_embedding for p in ("learned", "rotary", "alibi", "none"))
    assert not T5Config().resolved_scale_embedding and T5Config(scale_embedding=True).resolved_scale_embedding
    assert GPTConfig(position="sinusoidal", scale_embedding=False).embed_scale == 1.0
    assert GPTConfig(position="sinusoidal", embed_dim=64).embed_scale == 8.0


def test_pre_norm_stack_ends_in_norm_and_post_norm_starts_with_one():
    x = torch.randn(2, 6, E)
    pre = _stack("none", norm_placement="pre")
    _randomise_norms(pre)
    h = x
    for layer in pre.layers:
        h = layer(h)
    torch.testing.assert_close(pre(x), pre.final_norm(h))
    post = _stack("none", norm_placement="post")
    _randomise_norms(post)
    h = post.input_norm(x)
    for layer in post.layers:
        h = layer(h)
    torch.testing.assert_close(post(x), h)
    assert isinstance(pre.input_norm, torch.nn.Identity) and isinstance(post.final_norm, torch.nn.Identity)
