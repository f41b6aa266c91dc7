"""Beam search: one beam is greedy decoding, and a beam wide enough to keep every hypothesis returns
the best-scoring sequence found by enumerating all of them (score = sum log p / length ** penalty,
length counting the generated tokens, eos included — Hugging Face's convention)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from zoo.generation import GenerationConfig, _beam_search, _CausalState, _Seq2SeqState, generate

from .helpers import EOS, PAD, build, pad_batch, prompt_batch


def run_beam_search(model, family: str, ids, mask, **options) -> torch.Tensor:
    """The beam search strategy on its own (``generate`` sends ``num_beams=1`` to greedy decoding)."""
    config = GenerationConfig(**options)
    with torch.inference_mode():
        if family == "gpt":
            state = _CausalState(model, ids, mask, True, config.max_new_tokens)
        else:
            state = _Seq2SeqState(model, ids, mask, True, config.max_new_tokens, start_id=PAD)
        return _beam_search(state, config, config.eos_token_id, PAD)


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_one_beam_is_greedy(family):
    model = build(family, position="alibi", tie_embeddings=False)
    _, ids, mask = prompt_batch(family)
    start = ids.shape[1] if family == "gpt" else 1
    free = generate(model, ids, mask, max_new_tokens=10, min_new_tokens=10)[:, start:]
    # Make a token greedy decoding picks at step j of row 0 (and not before) the eos: row 0 ends
    # there, the other rows may go on.
    row = free[0].tolist()
    j = next(j for j in range(2, 10) if row[j] not in row[:j] and row[j] != PAD)
    greedy = generate(model, ids, mask, max_new_tokens=10, eos_token_id=row[j])[:, start:]
    assert greedy[0, j] == row[j] and (greedy[0, j + 1 :] == PAD).all()
    beam = run_beam_search(model, family, ids, mask, max_new_tokens=10, num_beams=1, eos_token_id=row[j])
    assert torch.equal(beam, greedy)


def log_probs(model, family: str, prompt: torch.Tensor, continuations: torch.Tensor) -> torch.Tensor:
    """log p(continuation | prompt) of each row of ``continuations`` ``(n, L)``, by uncached forward passes."""
    n, length = continuations.shape
    if family == "gpt":
        inputs = torch.cat((prompt.expand(n, -1), continuations[:, :-1]), dim=1)
        logits = model(inputs)[:, len(prompt) - 1 :]
    else:
        decoder_input = torch.cat((torch.full((n, 1), PAD), continuations[:, :-1]), dim=1)
        logits = model(prompt.expand(n, -1), decoder_input)
    return F.log_softmax(logits.float(), dim=-1).gather(-1, continuations[..., None]).squeeze(-1).sum(dim=-1)


def best_by_enumeration(model, family: str, prompt, vocab: int, steps: int, penalty: float) -> tuple[int, ...]:
    """Every finished hypothesis of up to ``steps`` tokens: eos only at the end, and shorter ones
    must end in eos (``max_new_tokens`` ends the rest)."""
    best, best_score = None, float("-inf")
    for length in range(1, steps + 1):
        sequences = [tokens for tokens in itertools.product(range(vocab), repeat=length)
                     if EOS not in tokens[:-1] and (length == steps or tokens[-1] == EOS)]
        with torch.no_grad():
            scores = log_probs(model, family, prompt, torch.tensor(sequences)) / length**penalty
        if scores.max() > best_score:
            best, best_score = sequences[int(scores.argmax())], float(scores.max())
    return best


# Logit scales that keep eos competitive, so that the best length depends on the length penalty.
SCALES = {"gpt": 1.0, "t5": 0.2}


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_wide_beam_finds_the_best_sequence_by_enumeration(family):
    vocab, steps = 6, 3  # 6 + 36 + 216 sequences, eos (id 3) among the choices at every step
    model = build(family, vocab_size=vocab, position="rotary")
    with torch.no_grad():
        model.lm_head.weight.mul_(SCALES[family])
    prompts = [torch.tensor([4, 5, 1, 4]), torch.tensor([5, 2])]
    ids, mask = pad_batch(prompts, left=family == "gpt")
    best_lengths = set()
    for penalty in (0.0, 0.5, 1.0, 2.0, -1.0):
        # vocab ** steps beams hold every hypothesis, so beam search is exhaustive here.
        found = run_beam_search(model, family, ids, mask, max_new_tokens=steps, num_beams=vocab**steps,
                                length_penalty=penalty, eos_token_id=EOS)
        for row, prompt in enumerate(prompts):
            best = best_by_enumeration(model, family, prompt, vocab, steps, penalty)
            best_lengths.add(len(best))
            padded = list(best) + [PAD] * (found.shape[1] - len(best))
            assert found[row].tolist() == padded, f"length_penalty={penalty}, row {row}"
    assert best_lengths == {1, steps}  # the penalty decided between short and long answers
