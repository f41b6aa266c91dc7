"""μP in every family: the config switch and its one-line refusals, equality with the standard model
at base width, the initialisation and multipliers at other widths, and the standard-parametrisation
model that folds them (what Hugging Face export uses)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.models.mup import standard_equivalent
from zoo.tasks import BertClassifier

from .helpers import VOCAB, logits, random_ids

TINY = dict(vocab_size=VOCAB, max_seq_len=32, num_layers=2, num_heads=4, dropout=0.0)
MODELS = {"bert": (BERT, BertConfig), "gpt": (GPT, GPTConfig), "t5": (T5, T5Config)}
# Family, config fields: each switch μP touches (tied and untied heads, QK-norm, experts, the
# embedding scale, Gemma's plus-one norm, fixed head width, token types, T5 v1.0 / v1.1).
VARIANTS = {
    "gpt-tied": ("gpt", {}),
    "gpt-sinusoidal-scaled": ("gpt", dict(position="sinusoidal")),
    "llama-untied-gqa": ("gpt", dict(norm="rmsnorm", activation="swiglu", position="rotary", bias=False,
                                     tie_embeddings=False, num_kv_heads=2)),
    "qwen3-qk_norm": ("gpt", dict(norm="rmsnorm", position="rotary", qk_norm="rmsnorm", tie_embeddings=False)),
    "gemma-plus_one-qk_norm": ("gpt", dict(norm="rmsnorm_plus_one", qk_norm="rmsnorm_plus_one", position="rotary")),
    "moe": ("gpt", dict(num_experts=3, experts_per_token=2)),
    "head_dim-fixed": ("gpt", dict(head_dim=8)),
    "bert-tied-types": ("bert", dict(type_vocab_size=2)),
    "bert-untied-layernorm_qk": ("bert", dict(tie_embeddings=False, qk_norm="layernorm")),
    "t5-v1.0-tied-scaled": ("t5", {}),
    "t5-v1.1-untied": ("t5", dict(tie_embeddings=False, activation="geglu_tanh")),
}


def build(family: str, width: int, base: int | None, seed: int = 0, **fields):
    model_class, config_class = MODELS[family]
    mup = {"parametrization": "mup", "base_width": base} if base is not None else {}
    torch.manual_seed(seed)
    return model_class(config_class(**{**TINY, "embed_dim": width, **mup, **fields})).eval()


@pytest.mark.parametrize(("fields", "message"), [
    (dict(parametrization="mup"), r"parametrization='mup' needs base_width: the embed_dim whose learning rate"),
    (dict(parametrization="mup", base_width=64), r"base_width=64 is larger than embed_dim=32"),
    (dict(parametrization="mup", base_width=18), r"base_width=18 must be divisible by num_heads=4"),
    (dict(parametrization="mup", base_width=0), r"base_width=0 must be a positive integer"),
    (dict(parametrization="mu-p", base_width=16), r"parametrization='mu-p' must be 'standard' or 'mup'"),
])
def test_bad_mup_settings_fail_in_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as error:
        GPTConfig(**{**TINY, "embed_dim": 32, **fields})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mup_at_base_width_is_the_standard_model(variant):
    family, fields = VARIANTS[variant]
    standard, mup = build(family, 32, None, **fields), build(family, 32, 32, **fields)
    for (name, a), (_, b) in zip(standard.state_dict().items(), mup.state_dict().items(), strict=True):
        assert torch.equal(a, b), name  # same initialisation, draw for draw
    ids = random_ids(2, 12)
    torch.testing.assert_close(logits(mup, family, ids), logits(standard, family, ids), rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", list(MODELS))
def test_hidden_matrices_start_narrower_and_the_rest_as_standard(family):
    width, base = 256, 16
    mup, standard = build(family, width, base), build(family, width, None)
    hidden = {id(layer.weight) for layer in mup.hidden_linears()}
    assert hidden
    for (name, a), (_, b) in zip(mup.named_parameters(), standard.named_parameters(), strict=True):
        ratio = a.std().item() / b.std().item() if b.std() > 0 else 1.0
        if id(a) in hidden and family != "t5":  # T5 initialises every projection by fan-in already
            assert ratio == pytest.approx(math.sqrt(base / width), rel=0.05), name
        elif "position_bias" in name:  # T5's relative bias: std base_width ** -0.5, not embed_dim ** -0.5
            assert ratio == pytest.approx(math.sqrt(width / base), rel=0.05), name
        else:
            assert ratio == pytest.approx(1.0, rel=0.05), name


def test_multipliers():
    config = GPTConfig(**TINY, embed_dim=128, parametrization="mup", base_width=32)
    assert config.width_mult == 4 and config.output_multiplier == 0.25
    # 1/d scores: sqrt(base head_dim 8) / head_dim 32, the standard 1/sqrt(8) at base width.
    assert config.resolved_attention_scale == pytest.approx(math.sqrt(8) / 32)
    fixed = GPTConfig(**TINY, embed_dim=128, head_dim=16, parametrization="mup", base_width=32)
    assert fixed.resolved_attention_scale == pytest.approx(16**-0.5)  # heads of fixed width keep their scale
    t5 = T5Config(**TINY, embed_dim=128, parametrization="mup", base_width=32)
    assert t5.resolved_attention_scale == pytest.approx(8 / 32)  # T5's constant 1.0 at base width, times 8/32
    gemma = GPTConfig(**TINY, embed_dim=128, attention_scale=0.125, parametrization="mup", base_width=32)
    assert gemma.resolved_attention_scale == pytest.approx(0.125 * 8 / 32)
    assert t5.output_scale == pytest.approx(32**-0.5 / 4)  # its tied-head scale taken at base width
    sinusoidal = GPTConfig(**TINY, embed_dim=128, position="sinusoidal", parametrization="mup", base_width=32)
    assert sinusoidal.embed_scale == pytest.approx(32**0.5)
    standard = GPTConfig(**TINY, embed_dim=128)
    assert (standard.width_mult, standard.output_multiplier, standard.resolved_attention_scale) == (1.0, 1.0, None)
    assert "parametrization" not in standard.architecture()
    assert config.architecture()["parametrization"] == "mup" and config.architecture()["base_width"] == 32


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_standard_equivalent_computes_the_same_logits(variant):
    family, fields = VARIANTS[variant]
    model = build(family, 64, 16, **fields)
    with torch.no_grad():  # random norms and biases too, so a misplaced fold shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    standard = standard_equivalent(model)
    assert standard.config.parametrization == "standard" and type(standard) is type(model)
    ids = random_ids(3, 12)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 8:] = False
    torch.testing.assert_close(logits(standard, family, ids, mask), logits(model, family, ids, mask),
                               rtol=1e-5, atol=1e-5)
    assert standard_equivalent(standard) is standard


def test_classifier_logits_carry_the_output_multiplier():
    config = BertConfig(**TINY, embed_dim=64, parametrization="mup", base_width=16)
    task = BertClassifier(config, labels=["a", "b", "c"]).eval()
    ids = random_ids(2, 10)
    mask = torch.ones_like(ids, dtype=torch.bool)
    features = task.format.features(task.model, ids, mask, task.pooling)
    expected = features * 0.25 @ task.head.classifier.weight.T + task.head.classifier.bias
    torch.testing.assert_close(task(ids, mask), expected)
