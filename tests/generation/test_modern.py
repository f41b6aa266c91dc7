"""Generation with the modern switches: the KV cache (a windowed one for sliding-window layers)
gives the tokens and logits of recomputing the whole sequence, in greedy decoding and beam search,
with padded prompts and well past the window."""

from __future__ import annotations

import pytest
import torch

from zoo.generation import _CausalState, _Seq2SeqState, generate

from .helpers import PAD, build, prompt_batch

NEW = 12  # with prompts of 3-7 tokens, sequences reach several times the window
SWITCHES = {
    "sliding_window": dict(sliding_window=3),
    "local_global": dict(sliding_window=2, global_layer_every=2, position="rotary"),
    "window_alibi": dict(sliding_window=4, position="alibi"),
    "qk_norm": dict(qk_norm="rmsnorm", position="rotary"),
    "moe": dict(num_experts=4, experts_per_token=2),
    "parallel_partial_rotary": dict(residual="parallel", position="rotary", rotary_fraction=0.5),
    "softcaps": dict(attention_softcap=2.0, logit_softcap=3.0),
    "relu2": dict(activation="relu2"),
}


def _state(model, family: str, ids, mask, use_cache: bool):
    if family == "gpt":
        return _CausalState(model, ids, mask, use_cache, room=NEW)
    return _Seq2SeqState(model, ids, mask, use_cache, room=NEW, start_id=PAD)


@pytest.mark.parametrize("switch", list(SWITCHES))
@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_cached_greedy_decoding_equals_uncached(family, switch):
    model = build(family, init_std=0.1, **SWITCHES[switch])  # wide enough weights for softcaps to bind
    _, ids, mask = prompt_batch(family)
    options = dict(max_new_tokens=NEW, min_new_tokens=NEW)
    assert torch.equal(generate(model, ids, mask, **options), generate(model, ids, mask, use_cache=False, **options))
    with torch.inference_mode():
        fast, slow = (_state(model, family, ids, mask, use_cache) for use_cache in (True, False))
        fast_logits, slow_logits = fast.start(), slow.start()
        for step in range(NEW):
            assert (fast_logits - slow_logits).abs().max() <= 1e-5, f"step {step}"
            tokens = fast_logits.argmax(dim=-1)
            fast_logits, slow_logits = fast.step(tokens), slow.step(tokens)
    window = model.config.sliding_window
    if window is not None:  # windowed layers held only what the window needs, global ones everything
        held = [layer.self_attn.seq_len for layer in fast.cache.layers]
        expected = [fast.cache.seq_len if w is None else w - 1 for w in model.decoder.windows]
        assert held == expected


@pytest.mark.parametrize("switch", ["sliding_window", "local_global", "moe", "qk_norm"])
@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_cached_beam_search_equals_uncached(family, switch):
    model = build(family, num_kv_heads=2, **SWITCHES[switch])
    _, ids, mask = prompt_batch(family)
    options = dict(max_new_tokens=NEW, num_beams=3, length_penalty=0.7)
    assert torch.equal(generate(model, ids, mask, **options), generate(model, ids, mask, use_cache=False, **options))
