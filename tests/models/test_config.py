"""Family configs: presets, validation that names the field, round-trips; weight tying and counting."""

import pickle

import pytest
import torch

from zoo.models import GPT, GPTConfig

from .helpers import FAMILIES, TINY, build, config


def test_llama_preset():
    cfg = GPTConfig.llama(**TINY)
    assert (cfg.norm, cfg.activation, cfg.position, cfg.bias) == ("rmsnorm", "swiglu", "rotary", False)
    assert cfg.num_kv_heads < cfg.num_heads  # grouped-query attention
    assert cfg.tie_embeddings is False
    model = GPT(cfg)
    assert all(
        isinstance(layer.ffn.act, torch.nn.SiLU) and layer.ffn.gate_proj is not None for layer in model.decoder.layers
    )
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert isinstance(model.decoder.final_norm, torch.nn.RMSNorm)
    assert model.decoder.rotary is not None and model.decoder.absolute_positions is None
    assert GPTConfig.llama(num_kv_heads=1, **TINY).num_kv_heads == 1  # overrides win


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({"embed_dim": 30, "num_heads": 4}, "embed_dim", "30"),
        ({"num_heads": 4, "num_kv_heads": 3}, "num_kv_heads", "3"),
        ({"norm": "batchnorm"}, "norm", "batchnorm"),
        ({"activation": "mish"}, "activation", "mish"),
        ({"position": "xpos"}, "position", "xpos"),
        ({"norm_placement": "middle"}, "norm_placement", "middle"),
        ({"attn_implementation": "flash"}, "attn_implementation", "flash"),
        ({"position": "rotary", "embed_dim": 36, "num_heads": 4}, "head_dim", "9"),
        ({"position": "rotary", "head_dim": 7}, "head_dim", "7"),
        ({"position": "sinusoidal", "embed_dim": 33, "num_heads": 3}, "embed_dim", "33"),
        ({"dropout": 1.0}, "dropout", "1.0"),
        ({"vocab_size": 0}, "vocab_size", "0"),
    ],
)
def test_validation_names_the_field(family, overrides, field, value):
    with pytest.raises(ValueError) as err:
        config(family, **overrides)
    assert field in str(err.value) and value in str(err.value)


def test_head_dim_lifts_divisibility_rule():
    model = build("gpt", embed_dim=30, num_heads=4, head_dim=8)
    assert model(torch.randint(0, 50, (1, 5))).shape == (1, 5, 50)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_to_dict_from_dict_round_trip(family):
    cls = FAMILIES[family][1]
    extra = {"num_decoder_layers": 3} if family == "t5" else {}
    cfg = config(family, position="alibi", num_kv_heads=2, ffn_dim=40, **extra)
    values = cfg.to_dict()
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in values.values())
    assert cls.from_dict(values) == cfg
    assert cls.from_dict(pickle.loads(pickle.dumps(values))) == cfg


@pytest.mark.parametrize("family", list(FAMILIES))
def test_from_dict_rejects_unknown_keys(family):
    values = {**config(family).to_dict(), "num_expert": 8}  # a typo of num_experts
    with pytest.raises(ValueError, match="num_expert"):
        FAMILIES[family][1].from_dict(values)


def test_family_defaults_are_their_namesakes():
    bert, gpt, t5 = (FAMILIES[f][1]() for f in ("bert", "gpt", "t5"))
    assert (bert.position, bert.norm_placement, bert.activation) == ("learned", "post", "gelu")
    assert (gpt.position, gpt.norm_placement, gpt.activation) == ("learned", "pre", "gelu_tanh")
    assert (t5.position, t5.norm, t5.norm_placement, t5.bias) == ("relative", "rmsnorm", "pre", False)


def test_t5_num_decoder_layers():
    model = build("t5", num_layers=2, num_decoder_layers=3)
    assert len(model.encoder.layers) == 2 and len(model.decoder.layers) == 3
    assert len(model.new_cache().layers) == 3


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tied_embeddings_share_storage(family):
    tied, untied = build(family, tie_embeddings=True), build(family, tie_embeddings=False)
    assert tied.lm_head.weight is tied.embed_tokens.weight
    assert tied.lm_head.weight.data_ptr() == tied.embed_tokens.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.embed_tokens.weight.data_ptr()
    # Tying removes exactly one vocabulary matrix from the count.
    assert untied.num_parameters() - tied.num_parameters() == 50 * 32


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("position", ["learned", "relative"])
def test_num_parameters(family, tie, position):
    model = build(family, tie_embeddings=tie, position=position)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_parameters() == sum(unique.values())
    non_embedding = model.num_parameters(exclude_embeddings=True)
    # The token table (shared with a tied head), an untied head and learned position tables (one per
    # stack) leave the count; T5's relative bias (buckets × heads) is attention, and stays.
    stacks = 2 if family == "t5" else 1
    removed = 50 * 32 + (0 if tie else 50 * 32) + (stacks * 32 * 32 if position == "learned" else 0)
    assert non_embedding == model.num_parameters() - removed
    assert non_embedding < model.num_parameters()


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "t5"])
def test_init_weights(family):
    """Normal(0, init_std); residual output projections scaled by 1/sqrt(2·layers) (GPT-2)."""
    std, layers = 0.05, 2
    model = build(family, embed_dim=64, num_layers=layers, init_std=std, tie_embeddings=False)
    for name, p in model.named_parameters():
        if name.endswith(("norm.weight", "_norm.weight")):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        elif name.endswith(("out_proj.weight", "down_proj.weight")):
            assert p.std().item() == pytest.approx(std / (2 * layers) ** 0.5, rel=0.15), name
        elif p.numel() >= 1000:  # large enough for the sample std to be near the true one
            assert p.std().item() == pytest.approx(std, rel=0.15), name
            assert abs(p.mean().item()) < 0.2 * std, name


def test_t5_init_is_fan_in_scaled():
    """T5 (Mesh TensorFlow init, as in HF's T5PreTrainedModel): embeddings std 1, q std (d·dk)^-½,
    k/v std d^-½, out std (h·dk)^-½, FFN in d^-½ and out f^-½ — with unscaled attention scores."""
    d, h, f = 64, 4, 256
    dk = d // h
    model = build("t5", embed_dim=d, num_heads=h, ffn_dim=f, tie_embeddings=False, vocab_size=500)
    assert model.config.attention_scale == 1.0
    attn = model.encoder.layers[0].self_attn
    q, kv = attn.q_proj.weight, torch.cat([attn.k_proj.weight, attn.v_proj.weight])
    expected = {
        "embed": (model.embed_tokens.weight, 1.0),
        "q": (q, (d * dk) ** -0.5),
        "kv": (kv, d**-0.5),
        "out": (attn.out_proj.weight, (h * dk) ** -0.5),
        "up": (model.encoder.layers[0].ffn.up_proj.weight, d**-0.5),
        "down": (model.encoder.layers[0].ffn.down_proj.weight, f**-0.5),
        "cross_q": (model.decoder.layers[0].cross_attn.q_proj.weight, (d * dk) ** -0.5),
    }
    for name, (weight, std) in expected.items():
        assert weight.std().item() == pytest.approx(std, rel=0.1), name
