"""Likelihood under the model, bits per byte and diversity of generations, against closed forms and
plain recomputation."""

from __future__ import annotations

import math

import pytest
import torch

from tests.analysis.helpers import VOCAB, build, random_ids
from zoo.analysis import (
    bits_per_byte,
    distinct_n,
    repetition_rate,
    score_language_model,
    sequence_log_likelihood,
    token_log_probs,
)
from zoo.generation import generate


def test_distinct_n_closed_forms():
    assert distinct_n([[1, 2, 3, 4]], 1) == 1.0
    assert distinct_n([[1, 1, 1, 1]], 1) == 0.25
    assert distinct_n([[1, 2, 1, 2]], 2) == 2 / 3  # (1,2) (2,1) (1,2)
    assert distinct_n([[1, 2], [1, 2]], 2) == 0.5  # counted across sequences
    assert distinct_n([[1]], 2) == 0.0
    assert distinct_n(torch.tensor([[5, 6, 7]]), 3) == 1.0
    with pytest.raises(ValueError):
        distinct_n([[1]], 0)


def test_repetition_rate_closed_forms():
    assert repetition_rate([[1, 2, 3, 4, 5]], n=2) == 0.0
    assert repetition_rate([[7] * 10], n=1) == 0.9
    assert repetition_rate([[1, 2, 1, 2, 1, 2]], n=2) == 1 - 2 / 5
    assert repetition_rate([[1, 2, 3, 4, 5], [7] * 10], n=1) == pytest.approx(0.45)  # mean over sequences
    assert repetition_rate([[1, 2]], n=4) == 0.0


@pytest.mark.parametrize("position", ["learned", "rotary", "alibi"])
def test_token_log_probs_match_a_plain_recomputation_and_ignore_left_padding(position):
    model = build("gpt", position=position)
    ids = random_ids(1, 6)
    expected = model(ids).log_softmax(-1)[0, torch.arange(5), ids[0, 1:]]
    assert torch.allclose(token_log_probs(model, ids)[0], expected, atol=1e-5)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = padded != 0
    assert torch.allclose(token_log_probs(model, padded, mask)[0, 3:], expected, atol=1e-5)


def test_sequence_log_likelihood_of_greedy_output_is_the_sum_of_its_chosen_log_probs():
    model = build("gpt")
    prompt = random_ids(2, 4)
    out = generate(model, prompt, max_new_tokens=5, eos_token_id=None)
    scores = sequence_log_likelihood(model, out, prompt_length=4)
    assert scores.num_tokens.tolist() == [5, 5]
    manual = torch.zeros(2)
    seq = out.clone()
    for i in range(4, 9):
        manual += model(seq[:, :i]).log_softmax(-1)[torch.arange(2), -1, seq[:, i]]
    assert torch.allclose(scores.log_likelihood, manual, atol=1e-4)
    assert (scores.mean_log_prob <= 0).all()


def test_sequence_log_likelihood_skips_padding_after_eos_and_scores_t5():
    model = build("gpt")
    seq = torch.tensor([[5, 6, 7, 3, 0, 0]])  # eos = 3, then pad
    scores = sequence_log_likelihood(model, seq, prompt_length=2, pad_token_id=0)
    assert scores.num_tokens.item() == 2  # 7 and eos
    t5 = build("t5")
    source = random_ids(1, 5)
    decoded = generate(t5, source, max_new_tokens=4, eos_token_id=None)  # starts with the pad (start) token
    scores = sequence_log_likelihood(t5, decoded, encoder_input_ids=source)
    assert scores.num_tokens.item() == 4
    expected = t5(source, decoded).log_softmax(-1)[0, torch.arange(4), decoded[0, 1:]].sum()
    assert torch.allclose(scores.log_likelihood[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="BERT"):
        token_log_probs(build("bert"), source)


def test_bits_per_byte_and_language_model_score():
    assert bits_per_byte(math.log(2) * 10, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)
    model = build("gpt")
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied: zero embeddings too, so every logit is 0: uniform over the vocab
    batches = [{"input_ids": random_ids(2, 8)}, {"input_ids": random_ids(1, 8)}]
    token_bytes = [2] * VOCAB
    score = score_language_model(model, batches, token_bytes)
    assert score.num_tokens == 3 * 7 and score.num_bytes == 2 * 21
    assert score.loss == pytest.approx(math.log(VOCAB), rel=1e-5)
    assert score.bits_per_byte == pytest.approx(math.log2(VOCAB) / 2, rel=1e-5)
