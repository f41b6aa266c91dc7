"""``generate()`` on weights imported from the architectures of the modern switches gives
transformers' tokens: Mistral (sliding window), Qwen3 (QK-norm, local/global windows), GPT-NeoX
(parallel residual, partial rotary), Mixtral (experts and a window) and Gemma 2 (sandwich norms,
softcaps, local/global windows) — greedy and beam search,
left-padded prompts, generating well past the window. Random weights from configs; nothing is
downloaded."""

from __future__ import annotations

import pytest
import torch

from zoo.generation import generate

from .helpers import EOS, PAD, pad_batch

transformers = pytest.importorskip("transformers")
zoo_hf = pytest.importorskip("zoo.hf", reason="zoo.hf (Hugging Face import) is not available")

VOCAB = 24
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, pad_token_id=PAD, bos_token_id=1, eos_token_id=EOS)
ARCHITECTURES = {
    "mistral": ("MistralForCausalLM", "MistralConfig", dict(num_key_value_heads=2, sliding_window=3)),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", dict(num_key_value_heads=2, head_dim=8, use_sliding_window=True,
                                                      sliding_window=3,
                                                      layer_types=["sliding_attention", "full_attention"])),
    "gpt_neox": ("GPTNeoXForCausalLM", "GPTNeoXConfig", dict(rope_parameters={
        "rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})),
    "mixtral": ("MixtralForCausalLM", "MixtralConfig", dict(num_key_value_heads=2, num_local_experts=4,
                                                            num_experts_per_tok=2, sliding_window=4)),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config", dict(num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                                                         sliding_window=3, attn_logit_softcapping=5.0,
                                                         final_logit_softcapping=3.0)),
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def models(request):
    transformers.logging.set_verbosity_error()
    hf_class, config_class, fields = ARCHITECTURES[request.param]
    config = getattr(transformers, config_class)(**{**COMMON, **fields})
    torch.manual_seed(0)
    hf = getattr(transformers, hf_class)(config)
    with torch.no_grad():  # spread-out weights: next-token choices vary, and eos ends some rows
        for parameter in hf.parameters():
            parameter.normal_(0, 0.4)
    hf.eval()
    return hf, zoo_hf.from_hf(hf).eval()


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(4, VOCAB, (n,), generator=generator) for n in (7, 2, 5)]
    return pad_batch(prompts, left=True)


def test_greedy_equals_transformers(models):
    hf, zoo = models
    for seed in range(3):
        ids, mask = batch(seed)
        options = dict(max_new_tokens=12, do_sample=False, eos_token_id=EOS, pad_token_id=PAD)
        expected = hf.generate(ids, attention_mask=mask, **options)
        assert torch.equal(generate(zoo, ids, mask, **options), expected), seed
        assert torch.equal(generate(zoo, ids, mask, use_cache=False, **options), expected), seed


def test_beam_search_equals_transformers(models):
    hf, zoo = models
    ids, mask = batch(0)
    options = dict(max_new_tokens=10, do_sample=False, num_beams=3, length_penalty=1.0, early_stopping=False,
                   eos_token_id=99, pad_token_id=PAD)  # no eos within the vocabulary: every beam runs to the end
    expected = hf.generate(ids, attention_mask=mask, **options)
    assert torch.equal(generate(zoo, ids, mask, **options), expected)
