"""``crop_context``: a learned-position decoder generating past its table reads the last
``max_seq_len`` tokens (positions from 0), as nanoGPT does; checked against a plain loop."""

from __future__ import annotations

import pytest
import torch

from tests.generation.helpers import gpt, random_ids, t5
from zoo.commands.generate import build_parser
from zoo.generation import generate

WINDOW = 12


def reference(model, ids: torch.Tensor, new: int) -> torch.Tensor:
    """nanoGPT's loop: each step, greedy on the logits of the last ``max_seq_len`` tokens."""
    with torch.no_grad():
        for _ in range(new):
            token = model(ids[:, -model.config.max_seq_len:])[:, -1].argmax(dim=-1, keepdim=True)
            ids = torch.cat((ids, token), dim=1)
    return ids


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_crop_matches_the_plain_loop(use_cache: bool) -> None:
    torch.manual_seed(0)
    model = gpt(position="learned", max_seq_len=WINDOW)
    ids = random_ids(2, 7)
    out = generate(model, ids, max_new_tokens=20, crop_context=True, use_cache=use_cache, eos_token_id=None)
    assert out.shape == (2, 27)  # 27 > WINDOW: the window slid 15 times
    assert torch.equal(out, reference(model, ids, 20))


def test_a_prompt_longer_than_the_table_is_cropped_too() -> None:
    torch.manual_seed(1)
    model = gpt(position="learned", max_seq_len=WINDOW)
    ids = random_ids(1, 2 * WINDOW)
    out = generate(model, ids, max_new_tokens=5, crop_context=True, eos_token_id=None)
    assert torch.equal(out, reference(model, ids, 5))


def test_left_padded_rows_crop_as_they_would_alone() -> None:
    torch.manual_seed(2)
    model = gpt(position="learned", max_seq_len=WINDOW)
    short, long = random_ids(1, 4), random_ids(1, 9)
    ids = torch.cat((torch.cat((torch.zeros(1, 5, dtype=torch.long), short), dim=1), long))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    out = generate(model, ids, mask, max_new_tokens=15, crop_context=True, eos_token_id=None)
    assert torch.equal(out[0, 5:], reference(model, short, 15)[0])
    assert torch.equal(out[1], reference(model, long, 15)[0])


def test_beam_search_runs_past_the_table() -> None:
    torch.manual_seed(3)
    model = gpt(position="learned", max_seq_len=WINDOW)
    out = generate(model, random_ids(2, 6), max_new_tokens=14, num_beams=3, crop_context=True, eos_token_id=None)
    assert out.shape == (2, 20)


def test_without_crop_the_refusal_stays() -> None:
    model = gpt(position="learned", max_seq_len=WINDOW)
    with pytest.raises(ValueError, match=r"exceeds max_seq_len=12"):
        generate(model, random_ids(1, 7), max_new_tokens=20)


def test_positions_without_a_table_never_crop() -> None:
    torch.manual_seed(4)
    model = gpt(position="rotary", max_seq_len=WINDOW)
    ids = random_ids(1, 7)
    cropped = generate(model, ids, max_new_tokens=20, crop_context=True, eos_token_id=None)
    assert torch.equal(cropped, generate(model, ids, max_new_tokens=20, eos_token_id=None))


def test_t5_encoder_input_longer_than_the_table_is_refused_in_one_line() -> None:
    model = t5(position="learned", max_seq_len=WINDOW)
    with pytest.raises(ValueError, match="crop_context applies to decoder-only") as error:
        generate(model, random_ids(1, WINDOW + 1), max_new_tokens=4, crop_context=True)
    assert "\n" not in str(error.value)


def test_zoo_generate_has_the_flag() -> None:
    assert build_parser().parse_args(["x.ckpt", "--crop-context"]).crop_context
    assert not build_parser().parse_args(["x.ckpt"]).crop_context
