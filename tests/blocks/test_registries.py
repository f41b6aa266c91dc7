"""Every one-of-N choice is a name: the Literal that configs and the CLI validate against must list
exactly the names the registry can build."""

from typing import get_args

import pytest

from zoo.blocks.attention import ATTENTION_FUNCTIONS, AttnImplementation
from zoo.blocks.feed_forward import ACTIVATIONS, ActivationName
from zoo.blocks.layers import NormPlacement
from zoo.blocks.norms import NORMS, NormName
from zoo.blocks.positions import POSITIONS, PositionName


@pytest.mark.parametrize(
    ("registry", "literal"),
    [
        (NORMS, NormName),
        (ACTIVATIONS, ActivationName),
        (POSITIONS, PositionName),
        (ATTENTION_FUNCTIONS, AttnImplementation),
    ],
    ids=["norms", "activations", "positions", "attn_implementation"],
)
def test_registry_and_literal_list_the_same_names(registry, literal):
    assert sorted(registry) == sorted(get_args(literal))
    assert len(set(registry)) == len(registry)


def test_norm_placement_literal():
    assert set(get_args(NormPlacement)) == {"pre", "post", "sandwich"}
