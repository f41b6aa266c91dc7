"""Bad input is refused with one line naming it — never turned into a silently different model."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.hf import from_hf, to_hf
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config

from .helpers import COMMON, CONFIG_CLASSES, HF_CLASSES, build, transformers

safetensors = pytest.importorskip("safetensors.torch")  # with transformers, in the hf extra

SMALL = {
    "bert": dict(hidden_size=32, num_attention_heads=4, intermediate_size=64),
    "gpt2": dict(n_embd=32, n_head=4),
    "llama": dict(hidden_size=32, num_attention_heads=4, intermediate_size=64),
    "t5": dict(d_model=32, d_kv=8, d_ff=64, num_heads=4),
}


def hf_model(arch: str, **fields):
    config = getattr(transformers, CONFIG_CLASSES[arch])(**{**COMMON[arch], **SMALL[arch], **fields})
    return getattr(transformers, HF_CLASSES[arch])(config)


def refused(match: str, fn, *args) -> str:
    with pytest.raises(ValueError, match=match) as error:
        fn(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("cls_name,config_name", [
    ("RobertaForMaskedLM", "RobertaConfig"),
    ("FalconForCausalLM", "FalconConfig"),
    ("BertModel", "BertConfig"),  # no LM head: no logits to match
])
def test_unsupported_classes(cls_name, config_name):
    config = getattr(transformers, config_name)(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=4, intermediate_size=64)
    model = getattr(transformers, cls_name)(config)
    refused(f"{cls_name} is not supported", from_hf, model)


@pytest.mark.parametrize("arch,fields,match", [
    ("bert", dict(hidden_act="tanh"), r"hidden_act='tanh' is not supported"),
    ("bert", dict(position_embedding_type="relative_key"), r"position_embedding_type='relative_key'"),
    ("bert", dict(is_decoder=True), r"is_decoder=True"),
    ("bert", dict(add_cross_attention=True, is_decoder=True), r"is_decoder=True|add_cross_attention=True"),
    ("gpt2", dict(scale_attn_by_inverse_layer_idx=True), r"scale_attn_by_inverse_layer_idx=True"),
    ("gpt2", dict(add_cross_attention=True), r"add_cross_attention=True"),
    ("gpt2", dict(activation_function="quick_gelu"), r"activation_function='quick_gelu'"),
    ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), r"rope_scaling=.*'linear'"),
    ("llama", dict(hidden_act="relu"), r"hidden_act='relu' is not supported"),
    ("llama", dict(attention_bias=True, mlp_bias=False), r"mlp_bias=False differs from attention_bias=True"),
    ("t5", dict(feed_forward_proj="gated-relu"), r"feed_forward_proj='gated-relu'"),
])
def test_hf_options_the_zoo_cannot_express(arch, fields, match):
    refused(match, from_hf, hf_model(arch, **fields))


def test_unknown_model_type_and_not_a_model_directory(tmp_path):
    hf_model("gpt2").save_pretrained(tmp_path / "ok")
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    (tmp_path / "ok" / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    refused(r"model_type='roberta' is not supported", from_hf, tmp_path / "ok")

    (tmp_path / "empty").mkdir()
    refused("has no config.json", from_hf, tmp_path / "empty")
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text(json.dumps(config))
    refused("holds no weights", from_hf, tmp_path / "no_weights")
    with pytest.raises(FileNotFoundError):
        from_hf(tmp_path / "missing")


def test_invalid_hf_config_file_is_one_line(tmp_path):
    hf_model("llama").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_attention_heads": 5}))  # 32 % 5 != 0
    refused(r"config\.json: .*not a multiple of the number of attention heads \(5\)", from_hf, tmp_path)


def edit_weights(directory, edit):
    state = safetensors.load_file(directory / "model.safetensors")
    edit(state)
    safetensors.save_file(state, directory / "model.safetensors")


@pytest.mark.parametrize("arch,edit,match", [
    ("llama", lambda s: s.pop("model.layers.1.self_attn.k_proj.weight"), r"missing tensor model\.layers\.1\.self_attn"),
    ("llama", lambda s: s.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(65, 32)}),
     r"tensor model\.layers\.0\.mlp\.up_proj\.weight has shape \(65, 32\); the config needs \(64, 32\)"),
    ("llama", lambda s: s.update({"model.layers.2.input_layernorm.weight": torch.ones(32)}),
     r"unexpected tensor model\.layers\.2\.input_layernorm\.weight"),
    ("gpt2", lambda s: s.update({"transformer.h.0.attn.c_attn.weight": torch.zeros(96, 32)}),
     r"transformer\.h\.0\.attn\.c_attn\.weight has shape \(96, 32\); the config needs \(32, 96\)"),
    ("t5", lambda s: s.pop("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
     r"missing tensor encoder\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight"),
    ("t5", lambda s: s.update({"encoder.embed_tokens.weight": torch.zeros(100, 32)}),
     r"encoder\.embed_tokens\.weight differs from shared\.weight"),
    ("bert", lambda s: s.pop("bert.embeddings.LayerNorm.bias"), r"missing tensor bert\.embeddings\.LayerNorm\.bias"),
])
def test_missing_extra_or_misshaped_tensors(tmp_path, arch, edit, match):
    hf_model(arch).save_pretrained(tmp_path)
    edit_weights(tmp_path, edit)
    refused(match, from_hf, tmp_path)


def test_untied_config_without_a_head_tensor(tmp_path):
    hf_model("gpt2", tie_word_embeddings=False).save_pretrained(tmp_path)
    edit_weights(tmp_path, lambda s: s.pop("lm_head.weight"))
    refused(r"missing tensor lm_head\.weight", from_hf, tmp_path)


TINY = dict(vocab_size=100, embed_dim=32, num_layers=1, num_heads=4)


@pytest.mark.parametrize("model,match", [
    (GPT(GPTConfig(**TINY, position="alibi")), r"position='alibi' cannot be exported"),
    (GPT(GPTConfig(**TINY, scale_embedding=True)), r"GPT2LMHeadModel: scale_embedding=True cannot be exported"),
    (T5(T5Config(**TINY, scale_embedding=True)), r"scale_embedding=True cannot be exported"),
    (GPT(GPTConfig(**TINY, position="rotary", norm="none")), r"LlamaForCausalLM: norm='none' cannot be exported"),
    (GPT(GPTConfig(**TINY, norm="rmsnorm")), r"GPT2LMHeadModel: norm='rmsnorm' cannot be exported"),
    (GPT(GPTConfig(**TINY, bias=False)), r"bias=False cannot be exported"),
    (GPT(GPTConfig(**TINY, num_kv_heads=2)), r"num_kv_heads=2 cannot be exported"),
    (GPT(GPTConfig(**TINY, activation="swiglu")), r"activation='swiglu' cannot be exported"),
    (GPT(GPTConfig.llama(**TINY, attention_scale=0.5)), r"attention_scale=0.5 cannot be exported"),
    (GPT(GPTConfig.llama(**TINY, activation="gelu")), r"activation='gelu' cannot be exported"),
    (BERT(BertConfig(**TINY, norm_placement="pre")), r"norm_placement='pre' cannot be exported"),
    (BERT(BertConfig(**TINY, position="rotary")), r"position='rotary' cannot be exported"),
    (BERT(BertConfig(**TINY, head_dim=16)), r"head_dim=16 cannot be exported"),
    (T5(T5Config(**TINY, num_kv_heads=2)), r"num_kv_heads=2 cannot be exported"),
    (T5(T5Config(**TINY, attention_scale=None)), r"attention_scale=None cannot be exported"),
    (T5(T5Config(**TINY, bias=True)), r"bias=True cannot be exported"),
    (T5(T5Config(**TINY, norm="layernorm")), r"norm='layernorm' cannot be exported"),
])
def test_zoo_configs_no_hf_class_expresses(model, match):
    refused(match, to_hf, model)


def test_to_hf_takes_zoo_models_only():
    refused("to_hf takes a zoo BERT, GPT or T5 model", to_hf, build("gpt2", "4heads-tied"))
