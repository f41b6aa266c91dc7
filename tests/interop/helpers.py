"""Tiny Hugging Face reference models (random weights, built from configs: nothing is downloaded),
and one way to call them and their zoo twins on the same batch."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

transformers = pytest.importorskip("transformers")

VOCAB = 100
TOLERANCE = 1e-4  # max |zoo - HF| over real-token logits, fp32, eval mode

COMMON = {
    "bert": dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=64, pad_token_id=0),
    "gpt2": dict(vocab_size=VOCAB, n_layer=2, n_positions=64, bos_token_id=1, eos_token_id=2),
    "llama": dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=64, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2),
    "t5": dict(vocab_size=VOCAB, num_layers=2, pad_token_id=0, eos_token_id=1),
}

# name -> (HF config fields, untie the head by hand). transformers 5 always ties T5's head when built
# from a config (`tie_word_embeddings=False` only turns off the output scaling); an untied T5 is
# what `from_pretrained` gives for a checkpoint whose head differs from the embedding.
CONFIGS: dict[str, dict[str, tuple[dict, bool]]] = {
    "bert": {
        "4heads-gelu-tied": (dict(hidden_size=32, num_attention_heads=4, intermediate_size=64), False),
        "3heads-gelu_new-untied-3types": (dict(hidden_size=48, num_attention_heads=3, intermediate_size=40,
                                               hidden_act="gelu_new", tie_word_embeddings=False,
                                               type_vocab_size=3), False),
        "5heads-relu-1type": (dict(hidden_size=40, num_attention_heads=5, intermediate_size=56, hidden_act="relu",
                                   type_vocab_size=1, max_position_embeddings=24, layer_norm_eps=1e-5), False),
    },
    "gpt2": {
        "4heads-tied": (dict(n_embd=32, n_head=4), False),
        "3heads-gelu-untied": (dict(n_embd=48, n_head=3, n_inner=40, activation_function="gelu",
                                    tie_word_embeddings=False), False),
        "5heads-relu-unscaled": (dict(n_embd=40, n_head=5, activation_function="relu", scale_attn_weights=False,
                                      reorder_and_upcast_attn=True), False),
    },
    "llama": {
        "gqa2-untied": (dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=64), False),
        "mqa-tied-head_dim16-bias-theta500": (dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
                                                   head_dim=16, intermediate_size=48, tie_word_embeddings=True,
                                                   attention_bias=True, mlp_bias=True, rope_theta=500.0), False),
        "5heads-mqa-gelu": (dict(hidden_size=40, num_attention_heads=5, num_key_value_heads=1, intermediate_size=64,
                                 hidden_act="gelu"), False),
        "gqa4-head_dim12-gelu_tanh": (dict(hidden_size=48, num_attention_heads=8, num_key_value_heads=2, head_dim=12,
                                           intermediate_size=64, hidden_act="gelu_pytorch_tanh",
                                           rms_norm_eps=1e-5), False),
    },
    "t5": {
        "v1.0-relu-tied-scaled": (dict(d_model=32, d_kv=8, d_ff=64, num_heads=4, feed_forward_proj="relu"), False),
        "v1.1-gated_gelu-untied-d_kv16-8buckets": (dict(d_model=32, d_kv=16, d_ff=48, num_heads=4,
                                                        feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                                        num_decoder_layers=3, relative_attention_num_buckets=8,
                                                        relative_attention_max_distance=20), True),
        "3heads-gated_silu-tied-unscaled": (dict(d_model=30, d_kv=10, d_ff=40, num_heads=3,
                                                 feed_forward_proj="gated-silu", tie_word_embeddings=False,
                                                 relative_attention_num_buckets=16,
                                                 relative_attention_max_distance=12), False),
        "5heads-gelu-d_kv6-untied-scaled": (dict(d_model=40, d_kv=6, d_ff=64, num_heads=5,
                                                 feed_forward_proj="gelu"), True),
    },
}
CASES = [(arch, name) for arch, configs in CONFIGS.items() for name in configs]

HF_CLASSES = {"bert": "BertForMaskedLM", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
              "t5": "T5ForConditionalGeneration"}
CONFIG_CLASSES = {"bert": "BertConfig", "gpt2": "GPT2Config", "llama": "LlamaConfig", "t5": "T5Config"}
AUTO_CLASSES = {"bert": "AutoModelForMaskedLM", "gpt2": "AutoModelForCausalLM", "llama": "AutoModelForCausalLM",
                "t5": "AutoModelForSeq2SeqLM"}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values in every parameter: HF initialises biases to zero and norms to one, which would
    hide a bias or norm mapped to the wrong place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        predictions = getattr(getattr(model, "cls", None), "predictions", None)
        if predictions is not None and predictions.bias is not predictions.decoder.bias:
            # transformers 5 leaves `predictions.bias` unused in an untied BERT head; the zoo keeps one bias.
            predictions.bias.copy_(predictions.decoder.bias)
    return model


def build(arch: str, name: str) -> nn.Module:
    """The HF reference model ``name`` of ``arch``: random weights, eval mode, fp32."""
    fields, untie = CONFIGS[arch][name]
    config = getattr(transformers, CONFIG_CLASSES[arch])(**{**COMMON[arch], **fields})
    model = getattr(transformers, HF_CLASSES[arch])(config)
    if untie and model.lm_head.weight is model.shared.weight:
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
        getattr(model, "all_tied_weights_keys", {}).pop("lm_head.weight", None)
    return randomize(model).eval()


def batch(arch: str, hf_config=None, padded: bool = False, seed: int = 1) -> dict[str, Tensor]:
    """Three sequences of 13 tokens (T5: 7 decoder tokens); padded = right padding of rows 1 and 2."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (3, 13), generator=g)
    attention_mask = torch.ones_like(input_ids)
    if padded:
        attention_mask[1, 9:] = 0
        attention_mask[2, 4:] = 0
        input_ids[attention_mask == 0] = 0
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if arch == "t5":
        decoder_input_ids = torch.randint(3, VOCAB, (3, 7), generator=g)
        decoder_input_ids[:, 0] = 0  # decoding starts from pad
        decoder_attention_mask = torch.ones_like(decoder_input_ids)
        if padded:
            decoder_attention_mask[1, 5:] = 0
            decoder_attention_mask[2, 2:] = 0
        out.update(decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask)
    if arch == "bert" and hf_config is not None and hf_config.type_vocab_size > 1:
        out["token_type_ids"] = torch.randint(0, hf_config.type_vocab_size, input_ids.shape, generator=g)
    return out


@torch.no_grad()
def hf_logits(model: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    return model(**inputs).logits


@torch.no_grad()
def zoo_logits(model: nn.Module, arch: str, inputs: dict[str, Tensor]) -> Tensor:
    """The zoo calling convention: every forward returns the logits tensor."""
    if arch == "t5":
        return model(inputs["input_ids"], inputs["decoder_input_ids"], attention_mask=inputs["attention_mask"],
                     decoder_attention_mask=inputs["decoder_attention_mask"])
    if "token_type_ids" in inputs:
        return model(inputs["input_ids"], inputs["attention_mask"], token_type_ids=inputs["token_type_ids"])
    return model(inputs["input_ids"], inputs["attention_mask"])


def max_diff(a: Tensor, b: Tensor, arch: str, inputs: dict[str, Tensor]) -> float:
    """Largest |a - b| over real tokens (padding positions are not compared)."""
    assert a.shape == b.shape
    real = inputs["decoder_attention_mask" if arch == "t5" else "attention_mask"].bool()
    return (a - b)[real].abs().max().item()


def assert_same_state(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key
