"""The architectures of the modern switches against Hugging Face's own implementations, random
weights from configs (nothing downloaded): ``MistralForCausalLM`` (sliding window),
``Qwen3ForCausalLM`` (QK-norm, per-layer windows), ``GPTNeoXForCausalLM`` (parallel residual,
partial rotary), ``MixtralForCausalLM`` (mixture of experts) and ``Gemma2ForCausalLM`` (sandwich
norms, softcaps, local/global layers) — equal logits with padding, exact state dicts both ways,
files, ``zoo convert`` and one-line refusals."""

from __future__ import annotations

import pytest
import torch

from zoo.commands.convert import main as convert
from zoo.hf import from_hf, save_pretrained, to_hf
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.tasks import load_task

from .helpers import (
    TOLERANCE,
    VOCAB,
    assert_same_state,
    batch,
    hf_logits,
    max_diff,
    randomize,
    transformers,
    zoo_logits,
)

COMMON = dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
              eos_token_id=2)
SMALL = dict(hidden_size=32, num_attention_heads=4, intermediate_size=48)
CLASSES = {"mistral": "MistralForCausalLM", "qwen3": "Qwen3ForCausalLM", "gpt_neox": "GPTNeoXForCausalLM",
           "mixtral": "MixtralForCausalLM", "gemma2": "Gemma2ForCausalLM"}
CONFIG_CLASSES = {"mistral": "MistralConfig", "qwen3": "Qwen3Config", "gpt_neox": "GPTNeoXConfig",
                  "mixtral": "MixtralConfig", "gemma2": "Gemma2Config"}


def _neox_rope(fraction: float, theta: float = 10000.0) -> dict:
    return dict(rope_parameters={"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": fraction})


# The batch is 13 tokens long: every window here is shorter, so the window binds.
CONFIGS = {
    "mistral": {
        "window4-gqa2-head_dim8": dict(num_key_value_heads=2, head_dim=8, sliding_window=4),
        "window2-mqa-tied-gelu": dict(num_key_value_heads=1, sliding_window=2, tie_word_embeddings=True,
                                      hidden_act="gelu"),
        "no_window-head_dim16": dict(num_key_value_heads=2, head_dim=16, sliding_window=None),
    },
    "qwen3": {
        "gqa2-global": dict(num_key_value_heads=2, head_dim=8),
        "alternating_window3-head_dim12": dict(num_key_value_heads=2, head_dim=12, use_sliding_window=True,
                                               sliding_window=3, layer_types=["sliding_attention", "full_attention"]),
        "all_window5-mqa-tied-theta500": dict(num_key_value_heads=1, head_dim=8, use_sliding_window=True,
                                              sliding_window=5, max_window_layers=0, tie_word_embeddings=True,
                                              rope_theta=500.0),
    },
    "gpt_neox": {
        "parallel-rotary25": dict(**_neox_rope(0.25)),
        "sequential-full_rotary-relu": dict(use_parallel_residual=False, hidden_act="relu", **_neox_rope(1.0)),
        "parallel-rotary50-tied-gelu_new-5heads": dict(hidden_size=40, num_attention_heads=5, hidden_act="gelu_new",
                                                       tie_word_embeddings=True, **_neox_rope(0.5, 1000.0)),
    },
    "mixtral": {
        "4experts-top2-gqa2": dict(num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2),
        "3experts-top3-window4-tied": dict(num_key_value_heads=2, num_local_experts=3, num_experts_per_tok=3,
                                           sliding_window=4, tie_word_embeddings=True),
        "6experts-top2-mqa-gelu-head_dim16": dict(num_key_value_heads=1, head_dim=16, num_local_experts=6,
                                                  num_experts_per_tok=2, hidden_act="gelu"),
    },
    "gemma2": {
        "alternating_window3-softcaps-gqa2": dict(num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                                                  sliding_window=3, attn_logit_softcapping=5.0,
                                                  final_logit_softcapping=3.0),
        "scalar64-no_softcap-untied-mqa-gelu": dict(num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=64,
                                                    sliding_window=4, attn_logit_softcapping=None,
                                                    final_logit_softcapping=None, tie_word_embeddings=False,
                                                    hidden_activation="gelu"),
    },
}
CASES = [(arch, name) for arch, configs in CONFIGS.items() for name in configs]


def hf_config(arch: str, **fields):
    return getattr(transformers, CONFIG_CLASSES[arch])(**{**COMMON, **SMALL, **fields})


def build(arch: str, name: str | None = None, **fields):
    """The HF model ``name`` of ``arch`` (or of ``fields``): random weights, eval mode, fp32."""
    config = hf_config(arch, **{**(CONFIGS[arch][name] if name else {}), **fields})
    return randomize(getattr(transformers, CLASSES[arch])(config)).eval()


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("arch,name", CASES)
def test_imported_model_matches_hf_logits(arch, name, padded):
    hf = build(arch, name)
    model = from_hf(hf)
    assert type(model) is GPT
    inputs = batch("gpt2", padded=padded)
    expected = hf_logits(hf, inputs)
    assert max_diff(expected, zoo_logits(model, "gpt2", inputs), "gpt2", inputs) <= TOLERANCE
    with torch.no_grad():  # the comparison can fail
        model.embed_tokens.weight.add_(torch.randn_like(model.embed_tokens.weight) * 0.05)
    assert max_diff(expected, zoo_logits(model, "gpt2", inputs), "gpt2", inputs) > 1e-3


def test_the_switches_arrive_in_the_zoo_config():
    assert from_hf(build("mistral", "window4-gqa2-head_dim8")).config.sliding_window == 4
    qwen = from_hf(build("qwen3", "alternating_window3-head_dim12")).config
    assert (qwen.qk_norm, qwen.sliding_window, qwen.global_layer_every) == ("rmsnorm", 3, 2)
    assert from_hf(build("qwen3", "all_window5-mqa-tied-theta500")).config.global_layer_every is None
    neox = from_hf(build("gpt_neox", "parallel-rotary25")).config
    assert (neox.residual, neox.rotary_fraction, neox.rotary_dims, neox.norm) == ("parallel", 0.25, 2, "layernorm")
    mixtral = from_hf(build("mixtral", "3experts-top3-window4-tied")).config
    assert (mixtral.num_experts, mixtral.experts_per_token, mixtral.sliding_window) == (3, 3, 4)
    gemma = from_hf(build("gemma2", "alternating_window3-softcaps-gqa2")).config
    assert (gemma.norm, gemma.norm_placement, gemma.scale_embedding, gemma.sliding_window, gemma.global_layer_every,
            gemma.attention_softcap, gemma.logit_softcap) == ("rmsnorm_plus_one", "sandwich", True, 3, 2, 5.0, 3.0)
    assert from_hf(build("gemma2", "scalar64-no_softcap-untied-mqa-gelu")).config.attention_scale == 0.125


def test_windows_bind_on_the_batch():
    """The window changes HF's logits on this batch, so matching them tests the zoo's window."""
    inputs = batch("gpt2", padded=True)
    windowed = build("mistral", "window2-mqa-tied-gelu")
    unwindowed = build("mistral", "window2-mqa-tied-gelu", sliding_window=None)
    unwindowed.load_state_dict(windowed.state_dict())
    assert max_diff(hf_logits(windowed, inputs), hf_logits(unwindowed, inputs), "gpt2", inputs) > 1e-3


@pytest.mark.parametrize("arch,name", CASES)
def test_hf_to_zoo_to_hf_state_dict_is_exact(arch, name):
    hf = build(arch, name)
    back = to_hf(from_hf(hf))
    # A Mistral without a window is a LLaMA, under the same tensor names.
    assert type(back).__name__ == ("LlamaForCausalLM" if name == "no_window-head_dim16" else CLASSES[arch])
    assert_same_state(hf.state_dict(), back.state_dict())
    inputs = batch("gpt2", padded=True)
    assert max_diff(hf_logits(hf, inputs), hf_logits(back.eval(), inputs), "gpt2", inputs) == 0.0


TINY = dict(vocab_size=VOCAB, max_seq_len=48, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0)
ZOO_CONFIGS = {
    "mistral": GPTConfig.llama(**TINY, num_kv_heads=2, sliding_window=4),
    "qwen3": GPTConfig.llama(**TINY, num_kv_heads=2, qk_norm="rmsnorm"),
    "qwen3-local_global": GPTConfig.llama(**{**TINY, "num_layers": 4}, num_kv_heads=1, qk_norm="rmsnorm",
                                          sliding_window=3, global_layer_every=2, tie_embeddings=True),
    "gpt_neox": GPTConfig(**TINY, position="rotary", residual="parallel", rotary_fraction=0.25),
    "gpt_neox-sequential-relu2": GPTConfig(**TINY, position="rotary", activation="relu2", tie_embeddings=False),
    "mixtral": GPTConfig.llama(**TINY, num_kv_heads=2, num_experts=4),
    "mixtral-window-top3-geglu": GPTConfig.llama(**TINY, num_kv_heads=2, num_experts=3, experts_per_token=3,
                                                 sliding_window=5, activation="geglu_tanh"),
    "gemma2": GPTConfig.llama(**{**TINY, "num_layers": 4}, num_kv_heads=2, norm="rmsnorm_plus_one",
                              norm_placement="sandwich", scale_embedding=True, sliding_window=4,
                              global_layer_every=2, attention_softcap=20.0, logit_softcap=10.0,
                              activation="geglu_tanh", tie_embeddings=True, attention_scale=0.125),
}


@pytest.mark.parametrize("name", list(ZOO_CONFIGS))
def test_zoo_model_exports_to_its_class_and_back(name):
    model = GPT(ZOO_CONFIGS[name])
    randomize(model).eval()
    hf = to_hf(model).eval()
    assert type(hf).__name__ == CLASSES[name.split("-")[0]]
    inputs = batch("gpt2", padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(model, "gpt2", inputs), "gpt2", inputs) <= TOLERANCE
    again = from_hf(hf)
    assert again.config.architecture() == model.config.architecture()
    assert_same_state(model.state_dict(), again.state_dict())


@pytest.mark.parametrize("arch,name", [(arch, next(iter(configs))) for arch, configs in CONFIGS.items()]
                         + [("mixtral", "3experts-top3-window4-tied"), ("qwen3", "alternating_window3-head_dim12")])
def test_files_and_convert_both_ways(tmp_path, arch, name):
    """A save_pretrained directory (Mixtral's files keep one tensor per expert) imports, converts to
    a zoo checkpoint and back to a directory that transformers loads with the same weights."""
    hf = build(arch, name)
    hf.save_pretrained(tmp_path / "hf")
    assert_same_state(from_hf(hf).state_dict(), from_hf(tmp_path / "hf").state_dict())
    assert convert([str(tmp_path / "hf"), str(tmp_path / "zoo.ckpt")]) == 0
    task = load_task(str(tmp_path / "zoo.ckpt"))
    inputs = batch("gpt2", padded=True)
    assert max_diff(hf_logits(hf, inputs), zoo_logits(task.model.eval(), "gpt2", inputs), "gpt2", inputs) <= TOLERANCE
    assert convert([str(tmp_path / "zoo.ckpt"), str(tmp_path / "back")]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    assert type(back).__name__ == CLASSES[arch]
    assert_same_state(hf.state_dict(), back.state_dict())
    save_pretrained(task.model, tmp_path / "again")
    assert_same_state(hf.state_dict(), transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "again")
                      .state_dict())


def test_moe_load_balancing_loss_is_mixtrals():
    """One layer, no padding: the zoo's per-layer loss is the one Mixtral computes (its aux_loss)."""
    hf = build("mixtral", num_hidden_layers=1, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
               router_aux_loss_coef=0.02)
    model = from_hf(hf)
    inputs = batch("gpt2")
    del inputs["attention_mask"]
    with torch.no_grad():
        expected = hf(**inputs, output_router_logits=True).aux_loss
        model(inputs["input_ids"])
    assert model.config.moe_aux_loss_weight == 0.02
    torch.testing.assert_close(model.aux_loss() / 0.02, expected.float(), atol=1e-6, rtol=1e-5)


def _refused(match: str, fn, *args) -> None:
    with pytest.raises(ValueError, match=match) as error:
        fn(*args)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("arch,fields,match", [
    ("mixtral", dict(router_jitter_noise=0.1), r"router_jitter_noise=0.1 is not supported"),
    ("mixtral", dict(num_local_experts=4, num_experts_per_tok=1), r"num_experts_per_tok=1 is not supported"),
    ("qwen3", dict(attention_bias=True), r"attention_bias=True cannot be expressed"),
    ("qwen3", dict(use_sliding_window=True, sliding_window=3, num_hidden_layers=3,
                   layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
     r"layer_types=.* is not expressible: zoo windows every layer but each n-th"),
    ("gpt_neox", dict(attention_bias=False), r"attention_bias=False cannot be expressed"),
    ("gpt_neox", dict(hidden_act="silu"), r"hidden_act='silu' is not supported"),
    ("mistral", dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
     r"rope_scaling=.*'linear'"),
    ("gemma2", dict(head_dim=8, attention_bias=True), r"attention_bias=True cannot be expressed"),
])
def test_hf_options_the_zoo_cannot_express(arch, fields, match):
    _refused(match, from_hf, build(arch, **fields))


LLAMA = dict(TINY, num_kv_heads=2)


@pytest.mark.parametrize("model,match", [
    (GPT(GPTConfig.llama(**LLAMA, sliding_window=4, global_layer_every=2)),
     r"MistralForCausalLM: global_layer_every=2 cannot be exported: Mistral windows every layer"),
    (GPT(GPTConfig.llama(**LLAMA, num_experts=4, experts_per_token=1)), r"experts_per_token=1 cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, num_experts=4, qk_norm="rmsnorm")),
     r"Qwen3ForCausalLM: num_experts=4 cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, qk_norm="layernorm")), r"LlamaForCausalLM: qk_norm='layernorm' cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, residual="parallel")), r"residual='parallel' cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, attention_softcap=50.0)), r"attention_softcap=50.0 cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, position="rotary", rotary_fraction=0.5)), r"rotary_fraction=0.5 cannot be exported"),
    (GPT(GPTConfig(**TINY, qk_norm="rmsnorm")), r"GPT2LMHeadModel: qk_norm='rmsnorm' cannot be exported"),
    (GPT(GPTConfig(**TINY, position="rotary", num_kv_heads=2)), r"GPTNeoXForCausalLM: num_kv_heads=2 cannot be"),
    (GPT(GPTConfig(**TINY, position="rotary", sliding_window=8)), r"GPTNeoXForCausalLM: sliding_window=8 cannot be"),
    (BERT(BertConfig(**TINY, logit_softcap=30.0)), r"logit_softcap=30.0 cannot be exported"),
    (T5(T5Config(**TINY, num_experts=4)), r"num_experts=4 cannot be exported"),
    (T5(T5Config(**TINY, activation="relu2", sliding_window=4)), r"sliding_window=4 cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, norm_placement="sandwich")), r"LlamaForCausalLM: norm_placement='sandwich'"),
    (GPT(GPTConfig.llama(**LLAMA, norm="rmsnorm_plus_one", norm_placement="sandwich")),
     r"Gemma2ForCausalLM: scale_embedding=None cannot be exported"),
    (GPT(GPTConfig.llama(**LLAMA, norm="rmsnorm_plus_one", norm_placement="sandwich", scale_embedding=True,
                         attention_scale=0.3)), r"attention_scale=0.3 cannot be exported: Gemma 2 needs 1/scale²"),
])
def test_zoo_switches_no_hf_class_expresses(model, match):
    _refused(match, to_hf, model)
