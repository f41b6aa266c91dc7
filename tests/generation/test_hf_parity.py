"""Parity with Hugging Face ``generate()``: the same weights (converted with ``zoo.hf.from_hf``) give
the same tokens for greedy decoding, beam search and seeded sampling, GPT-2 and T5, padded batches.

Models are built from configs with random weights; nothing is downloaded. Vocabularies are tiny and
weights scaled so that outputs vary and eos (id 3) really ends hypotheses, which exercises the beam
bookkeeping.
"""

from __future__ import annotations

import pytest
import torch

from zoo.generation import generate

from .helpers import EOS, PAD, pad_batch

transformers = pytest.importorskip("transformers")
zoo_hf = pytest.importorskip("zoo.hf", reason="zoo.hf (Hugging Face import) is not available")

VOCAB = 12
BEAM_SETTINGS = [
    dict(num_beams=3, length_penalty=1.0, early_stopping=False),
    dict(num_beams=3, length_penalty=0.5, early_stopping=True),
    dict(num_beams=4, length_penalty=2.0, early_stopping="never"),
    dict(num_beams=2, length_penalty=-1.0, early_stopping=False),
    dict(num_beams=5, length_penalty=1.5, early_stopping="never"),
]


@pytest.fixture(scope="module")
def models() -> dict:
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=2, eos_token_id=EOS,
        pad_token_id=PAD)).eval()
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, eos_token_id=EOS,
        pad_token_id=PAD, decoder_start_token_id=PAD)).eval()
    with torch.no_grad():
        gpt2.lm_head.weight.mul_(20)  # sharper next-token distributions (the head is tied: embeddings too)
        for parameter in t5.parameters():  # T5's own initialisation makes a random model repeat one token
            parameter.normal_(0, 0.5)
    return {"gpt": (gpt2, zoo_hf.from_hf(gpt2).eval()), "t5": (t5, zoo_hf.from_hf(t5).eval())}


def batch(family: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(4, VOCAB, (n,), generator=generator) for n in (6, 2, 4)]
    return pad_batch(prompts, left=family == "gpt")


def hf_style(zoo_out: torch.Tensor, start: int) -> torch.Tensor:
    """Hugging Face's beam search fills finished rows with ``pad_token_id or eos_token_id`` — eos when
    the pad id is 0 — where zoo (and HF's greedy search) pads: rewrite zoo's padding that way."""
    out = zoo_out.clone()
    new = out[:, start:]
    after_eos = (new == EOS).long().cumsum(dim=1) - (new == EOS).long() > 0
    new[after_eos] = EOS
    return out


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_greedy_equals_transformers(models, family):
    hf, zoo = models[family]
    for seed in range(4):
        ids, mask = batch(family, seed)
        options = dict(max_new_tokens=10, do_sample=False, eos_token_id=EOS, pad_token_id=PAD)
        expected = hf.generate(ids, attention_mask=mask, **options)
        assert torch.equal(generate(zoo, ids, mask, **options), expected)
        assert torch.equal(generate(zoo, ids, mask, use_cache=False, **options), expected)


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_beam_search_equals_transformers(models, family):
    hf, zoo = models[family]
    ended_early = 0
    for seed in range(6):
        ids, mask = batch(family, seed)
        start = ids.shape[1] if family == "gpt" else 1
        for setting in BEAM_SETTINGS:
            options = dict(max_new_tokens=8, do_sample=False, eos_token_id=EOS, pad_token_id=PAD, **setting)
            expected = hf.generate(ids, attention_mask=mask, **options)
            ours = generate(zoo, ids, mask, **options)
            assert torch.equal(hf_style(ours, start), expected), setting
            ended_early += int((ours[:, start:] == EOS).any())
    assert ended_early > 0  # eos really ended hypotheses


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_seeded_sampling_equals_transformers(models, family):
    """Both draw with ``torch.multinomial`` from the same filtered distribution (temperature, then
    top-k, then top-p): with the same global seed they draw the same tokens."""
    hf, zoo = models[family]
    ids, mask = batch(family, 0)
    options = dict(max_new_tokens=10, do_sample=True, temperature=0.8, top_k=6, top_p=0.9, eos_token_id=EOS,
                   pad_token_id=PAD)
    torch.manual_seed(123)
    expected = hf.generate(ids, attention_mask=mask, **options)
    torch.manual_seed(123)
    assert torch.equal(generate(zoo, ids, mask, **options), expected)
