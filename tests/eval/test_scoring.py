"""`zoo.eval.scoring.Scorer` against plain references written here: one sequence at a time, no
batching, no padding (and for a masked LM, the pseudo-log-likelihood as a loop over masked tokens)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.eval.helpers import tokenizer
from zoo.eval.scoring import Scorer
from zoo.generation import generate
from zoo.models.registry import get_family


def model(family: str, seed: int = 0, **config):
    tok = tokenizer()
    torch.manual_seed(seed)
    fields = dict(vocab_size=tok.vocab_size, embed_dim=32, num_layers=2, num_heads=4, max_seq_len=24,
                  pad_token_id=tok.pad_id, eos_token_id=tok.eos_id, bos_token_id=tok.bos_id, dropout=0.1)
    return get_family(family).model_class(get_family(family).make_config(**(fields | config))).eval()


def requests(n: int = 7, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        context = torch.randint(107, 1000, (int(torch.randint(1, 30, (1,), generator=g)),), generator=g).tolist()
        continuation = torch.randint(107, 1000, (1 + i % 4,), generator=g).tolist()
        out.append((context, continuation))
    return out


@torch.no_grad()
def causal_reference(m, context, continuation):
    ids = (context + continuation)[-(m.config.max_seq_len + 1):]
    logits = m(torch.tensor([ids[:-1]]))[0]
    log_probs = F.log_softmax(logits[-len(continuation):], dim=-1)
    target = torch.tensor(continuation)
    return float(log_probs[torch.arange(len(target)), target].sum()), bool((log_probs.argmax(-1) == target).all())


@torch.no_grad()
def seq2seq_reference(m, context, continuation):
    source = torch.tensor([context[-m.config.max_seq_len:]])
    decoder = torch.tensor([[m.config.pad_token_id, *continuation[:-1]]])
    log_probs = F.log_softmax(m(source, decoder)[0], dim=-1)
    target = torch.tensor(continuation)
    return float(log_probs[torch.arange(len(target)), target].sum()), bool((log_probs.argmax(-1) == target).all())


@torch.no_grad()
def pseudo_reference(m, context, continuation):
    """Salazar et al.'s PLL of the continuation, one masked copy at a time."""
    tok = tokenizer()
    room = m.config.max_seq_len - 2 - len(continuation)
    context = context[max(0, len(context) - room):]
    row = [tok.cls_id, *context, *continuation, tok.sep_id]
    total, greedy = 0.0, True
    for j, token in enumerate(continuation):
        masked = list(row)
        masked[1 + len(context) + j] = tok.mask_id
        log_probs = F.log_softmax(m(torch.tensor([masked]))[0, 1 + len(context) + j], dim=-1)
        total += float(log_probs[token])
        greedy &= int(log_probs.argmax()) == token
    return total, greedy


@pytest.mark.parametrize("family,reference", [("gpt", causal_reference), ("llama", causal_reference),
                                              ("t5", seq2seq_reference), ("bert", pseudo_reference)])
def test_batched_scores_equal_one_at_a_time(family, reference):
    m = model(family)
    scorer = Scorer(m, tokenizer(), batch_size=3)
    reqs = requests()  # contexts longer than max_seq_len included: cut from the left
    got = scorer.loglikelihood(reqs, disable_progress=True)
    for (value, greedy), (context, continuation) in zip(got, reqs, strict=True):
        want, want_greedy = reference(m, context, continuation)
        assert value == pytest.approx(want, abs=1e-4)
        assert greedy == want_greedy
    assert not m.training  # the scorer evaluates in eval mode (dropout off)


def test_greedy_is_true_for_the_models_own_argmax():
    m = model("gpt")
    context = requests(1)[0][0]
    out = generate(m, torch.tensor([context]), max_new_tokens=3)[0, len(context):].tolist()
    assert Scorer(m, tokenizer()).loglikelihood([(context, out)], disable_progress=True)[0][1] is True


def test_pseudo_log_likelihood_reads_both_sides():
    """A masked LM's score of a continuation depends on the tokens after each masked one (the rest
    of the continuation), which a left-to-right score could not."""
    m = model("bert")
    scorer = Scorer(m, tokenizer())
    context = [500, 501, 502]
    a, b = scorer.loglikelihood([(context, [600, 700]), (context, [600, 701])], disable_progress=True)
    first_a = pseudo_reference(m, context, [600])[0]
    assert a[0] != pytest.approx(b[0]) and a[0] != pytest.approx(first_a + pseudo_reference(m, context, [700])[0])


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_generate_is_zoo_generation_per_prompt(family):
    m = model(family)
    tok = tokenizer()
    prompts = [r[0][:10] for r in requests(5)]
    got = Scorer(m, tok, batch_size=2).generate(prompts, max_new_tokens=6, disable_progress=True)
    for prompt, ids in zip(prompts, got, strict=True):
        out = generate(m, torch.tensor([prompt]), max_new_tokens=6, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
        new = out[0, len(prompt):] if family == "gpt" else out[0, 1:]
        new = new.tolist()
        assert ids == (new[: new.index(tok.eos_id)] if tok.eos_id in new else new)


def test_refusals_are_one_line():
    tok = tokenizer()
    with pytest.raises(ValueError, match="masked LM .* writes no continuation"):
        Scorer(model("bert"), tok).generate([[500]], max_new_tokens=2)
    with pytest.raises(ValueError, match="max_gen_toks=24 leaves no room for a prompt"):
        Scorer(model("gpt"), tok).generate([[500]], max_new_tokens=24)
    with pytest.raises(ValueError, match="a continuation of 30 tokens does not fit max_seq_len=24"):
        Scorer(model("gpt"), tok).loglikelihood([([500], [500] * 30)])
    with pytest.raises(ValueError, match="empty continuation"):
        Scorer(model("gpt"), tok).loglikelihood([([500], [])])
    with pytest.raises(ValueError, match="batch_size=0 must be >= 1"):
        Scorer(model("gpt"), tok, batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_cpu_scores():
    reqs = requests()
    for family in ("gpt", "t5", "bert"):
        cpu = Scorer(model(family), tokenizer()).loglikelihood(reqs, disable_progress=True)
        gpu = Scorer(model(family), tokenizer(), device="cuda").loglikelihood(reqs, disable_progress=True)
        for (a, _), (b, _) in zip(cpu, gpu, strict=True):
            assert a == pytest.approx(b, abs=1e-3)
