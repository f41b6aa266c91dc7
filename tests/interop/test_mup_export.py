"""A μP model exports to Hugging Face as its standard equivalent — multipliers folded into the
weights — and transformers computes its logits; ``zoo convert`` of a μP checkpoint writes a
directory that ``from_pretrained`` loads with those logits."""

from __future__ import annotations

import pytest
import torch

from zoo.commands.convert import main as convert
from zoo.hf import from_hf, to_hf
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.tasks import CausalLM

from .helpers import AUTO_CLASSES, TOLERANCE, batch, hf_logits, max_diff, transformers, zoo_logits

MUP = dict(vocab_size=100, max_seq_len=48, embed_dim=64, num_layers=2, num_heads=4, dropout=0.0,
           parametrization="mup", base_width=16)
CONFIGS = {  # name -> (zoo class, batch convention, config, Hugging Face class)
    "gpt2-tied": (GPT, "gpt2", GPTConfig(**MUP), "GPT2LMHeadModel"),
    "llama-untied-gqa": (GPT, "gpt2", GPTConfig.llama(**MUP, num_kv_heads=2), "LlamaForCausalLM"),
    "qwen3-qk_norm-tied": (GPT, "gpt2", GPTConfig.llama(**MUP, qk_norm="rmsnorm", tie_embeddings=True),
                           "Qwen3ForCausalLM"),
    "mixtral-router": (GPT, "gpt2", GPTConfig.llama(**MUP, num_kv_heads=2, num_experts=3), "MixtralForCausalLM"),
    "gemma2-scaled-embedding": (GPT, "gpt2", GPTConfig.llama(
        **MUP, num_kv_heads=2, norm="rmsnorm_plus_one", norm_placement="sandwich", scale_embedding=True,
        sliding_window=4, global_layer_every=2, attention_softcap=20.0, logit_softcap=10.0, activation="geglu_tanh",
        tie_embeddings=True, attention_scale=0.125), "Gemma2ForCausalLM"),
    "bert-tied": (BERT, "bert", BertConfig(**MUP), "BertForMaskedLM"),
    "t5-v1.0-tied-scaled": (T5, "t5", T5Config(**MUP), "T5ForConditionalGeneration"),
    "t5-v1.1-untied": (T5, "t5", T5Config(**MUP, tie_embeddings=False, activation="geglu_tanh"),
                       "T5ForConditionalGeneration"),
}


def randomized(model_class, config):
    torch.manual_seed(0)
    model = model_class(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mup_model_exports_with_equal_logits(name):
    model_class, arch, config, hf_class = CONFIGS[name]
    model = randomized(model_class, config)
    hf = to_hf(model).eval()
    assert type(hf).__name__ == hf_class
    inputs = batch(arch, padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(model, arch, inputs), arch, inputs) <= TOLERANCE
    back = from_hf(hf)  # a standard model computing the same function
    assert back.config.parametrization == "standard"
    assert max_diff(zoo_logits(back.eval(), arch, inputs), zoo_logits(model, arch, inputs), arch, inputs) <= TOLERANCE


def test_zoo_convert_of_a_mup_checkpoint_loads_in_transformers(tmp_path):
    task = CausalLM(GPTConfig(**MUP))
    with torch.no_grad():
        for p in task.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "mup.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                "zoo_task": "zoo.tasks.objectives.CausalLM"}, path)
    assert convert([str(path), str(tmp_path / "hf")]) == 0
    hf = getattr(transformers, AUTO_CLASSES["gpt2"]).from_pretrained(tmp_path / "hf").eval()
    inputs = batch("gpt2", padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(task.model.eval(), "gpt2", inputs), "gpt2", inputs) <= TOLERANCE
