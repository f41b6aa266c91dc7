"""The name registries stay in sync with the names configs accept, and every name builds what it
says: norms, activations, position schemes and families."""

from typing import get_args

import pytest
import torch

from zoo.blocks.feed_forward import ACTIVATIONS, ActivationName
from zoo.blocks.norms import NORMS, NormName
from zoo.blocks.positions import POSITIONS, PositionName
from zoo.models import GPT, GPTConfig
from zoo.models.builders import POSITION_BUILDERS, position_scheme, transformer_stack
from zoo.models.config import PRESETS, PresetName
from zoo.models.registry import FAMILIES, family_of, get_family
from zoo.tasks import LanguageModelTask

from .helpers import TINY


@pytest.mark.parametrize(("registry", "literal"), [(NORMS, NormName), (ACTIVATIONS, ActivationName),
                                                   (POSITION_BUILDERS, PositionName)])
def test_registries_list_exactly_the_names_configs_accept(registry, literal):
    assert list(registry) == list(get_args(literal))
    assert list(POSITIONS) == list(get_args(PositionName))


def _stack(position: str):
    return transformer_stack(GPTConfig(**{**TINY, "position": position}), causal=True).eval()


def test_every_position_name_builds_its_own_working_module():
    built = {name: position_scheme(GPTConfig(**{**TINY, "position": name}), causal=True) for name in POSITIONS}
    assert built.pop("none") is None
    assert len({type(module) for module in built.values()}) == len(built)  # no two names share a module
    x = torch.randn(2, 5, TINY["embed_dim"])
    plain = _stack("none")
    for name in built:
        # Each scheme works and changes the output: no name silently means "no positions".
        stack = _stack(name)
        plain.load_state_dict(stack.state_dict(), strict=False)
        out = stack(x)
        assert torch.isfinite(out).all() and not torch.allclose(out, plain(x)), name


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_builds_its_model_and_names_its_task(name):
    family = get_family(name)
    config = family.make_config(**TINY)
    assert isinstance(config, family.config_class)
    for field, value in (PRESETS[family.preset] if family.preset else {}).items():
        assert getattr(config, field) == TINY.get(field, value)  # given fields win over the preset
    model = family.model_class(config)
    assert family_of(model).model_class is family.model_class and not family_of(model).preset
    task_class = family.task_class
    assert issubclass(task_class, LanguageModelTask)
    assert task_class.model_class is family.model_class and task_class.config_class is family.config_class


def test_llama_preset_is_the_gpt_family_with_llamas_recipe():
    assert get_family("llama").make_config(**TINY) == GPTConfig.llama(**TINY)
    assert family_of(GPT(GPTConfig.llama(**TINY))).name == "gpt"


def test_a_preset_gives_the_fields_left_out_and_every_given_field_wins():
    llama = PRESETS["llama"]
    config = GPTConfig.from_dict({"preset": "llama", "embed_dim": 64, "num_kv_heads": 1})
    assert (config.embed_dim, config.num_kv_heads) == (64, 1)
    assert all(getattr(config, k) == v for k, v in llama.items() if k != "num_kv_heads")
    assert config.preset == "llama" and GPTConfig.from_dict(config.to_dict()) == config  # a checkpoint's dict
    # A given field equal to the family default the preset changes is kept, and the preset is no
    # longer named (the constructor would read that field as left out).
    back = GPTConfig.from_dict({"preset": "llama", "bias": True, "num_heads": 4})
    assert (back.bias, back.num_heads, back.norm, back.preset) == (True, 4, "rmsnorm", None)
    assert GPTConfig.from_dict(back.to_dict()) == back
    assert GPTConfig(preset="llama", embed_dim=64) == GPTConfig.llama(embed_dim=64)
    with pytest.raises(ValueError, match=r"preset='lama' is not one of \['llama'\]"):
        GPTConfig.from_dict({"preset": "lama"})
    assert set(get_args(PresetName)) == set(PRESETS)


def test_unknown_family_is_one_line():
    with pytest.raises(ValueError, match=r"unknown family 'gpt3'; choose one of \['bert', 'gpt', 'llama', 't5'\]"):
        get_family("gpt3")
    with pytest.raises(ValueError, match="not a zoo family"):
        family_of(torch.nn.Linear(2, 2))
