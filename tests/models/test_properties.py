"""Whole-model properties: causality, bidirectionality, padding invariance, SDPA = eager."""

import pytest
import torch

from .helpers import FAMILIES, POSITIONS, build, logits, random_ids

ATOL = 1e-5


@pytest.mark.parametrize("with_mask", [False, True], ids=["no_mask", "all_ones_mask"])
@pytest.mark.parametrize("position", POSITIONS)
def test_gpt_is_causal(position, with_mask):
    model = build("gpt", position=position).eval()
    ids = random_ids(2, 10)
    j = 6
    changed = ids.clone()
    changed[:, j:] = (ids[:, j:] + 7) % 46 + 4  # a different real token at and after j
    mask = torch.ones_like(ids, dtype=torch.bool) if with_mask else None
    out, out_changed = model(ids, mask), model(changed, mask)
    torch.testing.assert_close(out_changed[:, :j], out[:, :j], atol=ATOL, rtol=0)
    assert not torch.allclose(out_changed[:, j:], out[:, j:], atol=1e-4)


@pytest.mark.parametrize("position", POSITIONS)
def test_t5_decoder_is_causal(position):
    model = build("t5", position=position).eval()
    src, dec = random_ids(2, 7), random_ids(2, 10)
    j = 4
    changed = dec.clone()
    changed[:, j] = (dec[:, j] + 7) % 46 + 4
    out, out_changed = model(src, dec), model(src, changed)
    torch.testing.assert_close(out_changed[:, :j], out[:, :j], atol=ATOL, rtol=0)
    assert not torch.allclose(out_changed[:, j:], out[:, j:], atol=1e-4)


@pytest.mark.parametrize("position", POSITIONS)
def test_bert_is_bidirectional(position):
    # float64: at init the last token's pull on the first position can be ~1e-5, too near fp32 noise.
    model = build("bert", position=position).double().eval()
    ids = random_ids(2, 10)
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] + 7) % 46 + 4
    out, out_changed = model(ids), model(changed)
    # The last token reaches every earlier position, the first included.
    assert (out_changed[:, 0] - out[:, 0]).abs().max() > 1e-9


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("position", POSITIONS)
def test_right_padding_does_not_change_real_positions(family, position):
    model = build(family, position=position).eval()
    ids = random_ids(2, 8)
    # Padding filled with ordinary tokens, so only the mask can keep them out.
    padded = torch.cat((ids, random_ids(2, 4)), dim=1)
    mask = torch.cat((torch.ones(2, 8), torch.zeros(2, 4)), dim=1).long()
    dec = random_ids(2, 5)
    plain = logits(model, family, ids, decoder_input_ids=dec)
    out = logits(model, family, padded, mask, decoder_input_ids=dec)
    if family == "t5":
        torch.testing.assert_close(out, plain, atol=ATOL, rtol=1e-5)  # decoder reads only real encoder tokens
        encoded = model.encode(padded, mask)[:, :8]
        torch.testing.assert_close(encoded, model.encode(ids), atol=ATOL, rtol=1e-5)
    else:
        torch.testing.assert_close(out[:, :8], plain, atol=ATOL, rtol=1e-5)
    # Without the mask, the extra tokens do change bidirectional models: the mask is doing the work.
    if family != "gpt":
        unmasked = logits(model, family, padded, decoder_input_ids=dec)
        assert not torch.allclose(unmasked[:, : plain.shape[1]], plain, atol=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("num_kv_heads", [4, 2], ids=["mha", "gqa"])
def test_sdpa_equals_eager(family, position, num_kv_heads):
    sdpa = build(family, position=position, num_kv_heads=num_kv_heads, attn_implementation="sdpa").eval()
    eager = build(family, position=position, num_kv_heads=num_kv_heads, attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    ids = random_ids(3, 9)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[0, -3:] = False
    mask[2, -1:] = False
    dec = random_ids(3, 6)
    torch.testing.assert_close(
        logits(sdpa, family, ids, mask, decoder_input_ids=dec),
        logits(eager, family, ids, mask, decoder_input_ids=dec),
        atol=ATOL,
        rtol=1e-5,
    )


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("position", POSITIONS)
def test_bfloat16_autocast_and_pure_bfloat16_follow_float32(family, position):
    """What `--trainer.precision bf16-mixed` / `bf16-true` run: padded batches, forward and backward."""
    model = build(family, position=position)
    ids = random_ids(2, 10)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, -3:] = 0
    reference = logits(model, family, ids, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = logits(model, family, ids, mask)
    mixed.float().sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    pure = logits(model.to(torch.bfloat16), family, ids, mask)
    for out in (mixed, pure):
        real = mask.bool()[..., None].expand_as(reference)
        assert (out.float() - reference)[real].abs().max() < 0.05 * reference.abs().max()
