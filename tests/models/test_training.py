"""Each family starts at chance (loss ≈ ln V) and can memorise one small batch."""

import math

import pytest
import torch

from .helpers import FAMILIES, build, logits, loss, random_ids


def _batch(family: str):
    ids = random_ids(4, 12)
    # Targets drawn independently of the inputs: a tied head scores a token's own embedding higher,
    # which would make "predict the input token" easier than chance at initialisation.
    targets = random_ids(4, 12)
    decoder_input_ids = random_ids(4, 12) if family == "t5" else None
    return ids, targets, decoder_input_ids


@pytest.mark.parametrize("family", list(FAMILIES))
def test_loss_at_init_is_ln_vocab(family):
    """At initialisation the logits are roughly i.i.d. Gaussian with a small variance σ², so the
    expected cross-entropy against unrelated targets is ln V + σ²/2 (E[e^z] = e^(σ²/2)). BERT and GPT
    start with σ² ≈ 0, i.e. at ln V; T5's fan-in init gives unit-variance logits, ln V + ½."""
    model = build(family, vocab_size=500).eval()
    ids, targets, dec = _batch(family)
    with torch.no_grad():
        value = loss(model, family, ids, targets, decoder_input_ids=dec).item()
        variance = logits(model, family, ids, decoder_input_ids=dec).var().item()
    assert variance < (1.5 if family == "t5" else 0.1)
    assert abs(value - (math.log(500) + variance / 2)) < 0.2, (value, variance)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_overfits_one_batch(family):
    # T5 scales the decoder output by embed_dim^-0.5 before its tied head, so with small initial
    # embeddings its logits start tiny and grow slowly: it gets a wider model and more steps.
    model = (build(family, embed_dim=64) if family == "t5" else build(family)).train()
    ids, targets, dec = _batch(family)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(200 if family == "t5" else 150):
        optimizer.zero_grad()
        value = loss(model, family, ids, targets, decoder_input_ids=dec)
        value.backward()
        optimizer.step()
        first = value.item() if first is None else first
    assert value.item() < 0.1 * first, (first, value.item())
