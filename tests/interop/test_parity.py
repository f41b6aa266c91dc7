"""Zoo blocks against Hugging Face's independent implementations: equal logits after import, after
export, and exact state dicts after a round trip."""

from __future__ import annotations

import pytest
import torch

from zoo.hf import from_hf, to_hf
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

from .helpers import CASES, HF_CLASSES, TOLERANCE, assert_same_state, batch, build, hf_logits, max_diff, zoo_logits

ZOO_CLASSES = {"bert": BERT, "gpt2": GPT, "llama": GPT, "t5": T5}


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("arch,name", CASES)
def test_imported_model_matches_hf_logits(arch, name, padded):
    hf = build(arch, name)
    model = from_hf(hf)
    assert type(model) is ZOO_CLASSES[arch] and not model.training
    inputs = batch(arch, hf.config, padded)
    expected = hf_logits(hf, inputs)
    assert max_diff(expected, zoo_logits(model, arch, inputs), arch, inputs) <= TOLERANCE
    # The comparison can fail: a changed weight shows, and so does padding where real tokens see it
    # (causal models with right padding never do).
    if padded and arch in ("bert", "t5"):
        unpadded = {k: v for k, v in inputs.items() if "mask" not in k}
        assert max_diff(expected, hf_logits(hf, unpadded), arch, inputs) > 1e-3
    with torch.no_grad():
        model.embed_tokens.weight.add_(torch.randn_like(model.embed_tokens.weight) * 0.05)
    assert max_diff(expected, zoo_logits(model, arch, inputs), arch, inputs) > 1e-3


@pytest.mark.parametrize("arch,name", CASES)
def test_hf_to_zoo_to_hf_state_dict_is_exact(arch, name):
    hf = build(arch, name)
    back = to_hf(from_hf(hf))
    assert type(back).__name__ == HF_CLASSES[arch]
    assert_same_state(hf.state_dict(), back.state_dict())
    tied = hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
    assert (back.get_output_embeddings().weight is back.get_input_embeddings().weight) == tied
    inputs = batch(arch, hf.config, padded=True)
    assert max_diff(hf_logits(hf, inputs), hf_logits(back.eval(), inputs), arch, inputs) == 0.0


TINY = dict(vocab_size=100, max_seq_len=48, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0)
ZOO_CONFIGS = {
    "bert-no-segments": ("bert", BertConfig(**TINY)),
    "bert-gelu_tanh-untied-2types": ("bert", BertConfig(**TINY, activation="gelu_tanh", tie_embeddings=False,
                                                        type_vocab_size=2)),
    "gpt2": ("gpt2", GPTConfig(**TINY)),
    "gpt2-relu-unscaled-untied-3heads": ("gpt2", GPTConfig(**{**TINY, "num_heads": 3, "embed_dim": 48},
                                                           activation="relu", attention_scale=1.0,
                                                           tie_embeddings=False, ffn_dim=72)),
    "llama-gqa": ("llama", GPTConfig.llama(**TINY, num_kv_heads=2)),
    "llama-mqa-bias-head_dim16-geglu-tied": ("llama", GPTConfig.llama(**TINY, num_kv_heads=1, bias=True, head_dim=16,
                                                                      activation="geglu", tie_embeddings=True,
                                                                      rope_base=1000.0)),
    "t5-v1.0": ("t5", T5Config(**TINY)),
    "t5-v1.1": ("t5", T5Config(**TINY, activation="geglu_tanh", tie_embeddings=False, num_decoder_layers=1)),
    "t5-geglu-tied-unscaled-head_dim12": ("t5", T5Config(**TINY, activation="geglu", scale_decoder_output=False,
                                                         head_dim=12, relative_num_buckets=10,
                                                         relative_max_distance=16)),
    "t5-swiglu-untied-scaled-5heads": ("t5", T5Config(**{**TINY, "num_heads": 5, "embed_dim": 40},
                                                      activation="swiglu", tie_embeddings=False,
                                                      scale_decoder_output=True)),
    "t5-gelu_tanh": ("t5", T5Config(**TINY, activation="gelu_tanh")),
}


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("name", ZOO_CONFIGS)
def test_exported_model_matches_zoo_logits(name, padded):
    arch, config = ZOO_CONFIGS[name]
    model = ZOO_CLASSES[arch](config)
    with torch.no_grad():  # random norms and biases too (zoo initialises them to one and zero)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    hf = to_hf(model)
    assert type(hf).__name__ == HF_CLASSES[arch] and not hf.training
    inputs = batch(arch, hf.config, padded)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(model, arch, inputs), arch, inputs) <= TOLERANCE
    back = from_hf(hf)
    assert back.config.architecture() == config.architecture()
    assert_same_state(model.state_dict(), back.state_dict())
