"""Sampling: the top-k / top-p filters on hand-made distributions, and sampling's limits (top-k = 1
and temperature → 0 are greedy), seeds and filtering inside ``generate``."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.generation import generate, top_k_filter, top_p_filter

from .helpers import build, prompt_batch

INF = float("-inf")


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(logits > INF).flatten().tolist())


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(p) if p > 0 else INF for p in probs])


# probabilities in scrambled order, so the filter has to sort and scatter back
PROBS = [0.125, 0.5, 0.05, 0.25, 0.075]  # ranks: 1 (0.5), 3 (0.25), 0 (0.125), 4 (0.075), 2 (0.05)


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.3, {1}),  # the most likely token alone reaches 0.3
        (0.49, {1}),
        (0.51, {1, 3}),  # 0.5 falls short, 0.5 + 0.25 reaches it
        (0.74, {1, 3}),
        (0.76, {1, 3, 0}),  # 0.75 falls short
        (0.9, {1, 3, 0, 4}),  # 0.875 falls short, 0.95 reaches it
        (0.97, {1, 3, 0, 4, 2}),
        (1.0, {0, 1, 2, 3, 4}),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, expected):
    assert kept(top_p_filter(logits_of(PROBS)[None], top_p)[0]) == expected


def test_top_p_matches_a_brute_force_reference_row_by_row():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 12, generator=generator) * 2
    logits[::7, :5] = INF  # rows already filtered (e.g. by top-k) stay consistent
    for top_p in (0.1, 0.5, 0.9, 0.99):
        filtered = top_p_filter(logits, top_p)
        for row, out in zip(logits, filtered, strict=True):
            probs = row.softmax(dim=-1).tolist()
            order = sorted(range(len(probs)), key=lambda i: -probs[i])
            reference, total = set(), 0.0
            for i in order:  # the smallest prefix of the sorted tokens whose mass reaches top_p
                reference.add(i)
                total += probs[i]
                if total >= top_p:
                    break
            assert kept(out) == reference
            assert torch.equal(out[out > INF], row[out > INF])  # kept logits are untouched


def test_top_k_keeps_the_k_largest():
    logits = logits_of(PROBS)[None].repeat(2, 1)
    assert kept(top_k_filter(logits, 2)[0]) == {1, 3}
    assert kept(top_k_filter(logits, 1)[1]) == {1}
    assert torch.equal(top_k_filter(logits, 10), logits)


@pytest.mark.parametrize("family", ["gpt", "t5"])
@pytest.mark.parametrize("limit", [dict(top_k=1), dict(temperature=1e-5), dict(top_p=1e-6)],
                         ids=["top_k=1", "temperature=1e-5", "top_p=1e-6"])
def test_sampling_in_the_greedy_limit_equals_greedy(family, limit):
    model = build(family, position="rotary")
    _, ids, mask = prompt_batch(family)
    greedy = generate(model, ids, mask, max_new_tokens=10)
    for seed in range(3):
        assert torch.equal(generate(model, ids, mask, max_new_tokens=10, do_sample=True, seed=seed, **limit), greedy)


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_same_seed_same_samples_different_seed_different_samples(family):
    model = build(family)
    _, ids, mask = prompt_batch(family)
    options = dict(max_new_tokens=12, min_new_tokens=12, do_sample=True)
    first, again = generate(model, ids, mask, seed=1, **options), generate(model, ids, mask, seed=1, **options)
    assert torch.equal(first, again)
    assert not torch.equal(first, generate(model, ids, mask, seed=2, **options))
    # A generator continues its stream: two draws from one generator differ, a re-seeded one repeats.
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(generate(model, ids, mask, generator=generator, **options), first)
    assert not torch.equal(generate(model, ids, mask, generator=generator, **options), first)


def test_sampled_tokens_stay_inside_the_top_k():
    """Sample one step many times from the same prompt: only the k most likely tokens ever appear."""
    model = build("gpt")
    ids = torch.randint(4, 50, (1, 5)).repeat(200, 1)
    top = set(model(ids[:1])[0, -1].topk(3).indices.tolist())
    samples = generate(model, ids, max_new_tokens=1, do_sample=True, top_k=3, seed=0)[:, -1]
    assert set(samples.tolist()) == top  # all three show up in 200 draws, nothing else does
