"""``generate`` as a user sees it: batches of different lengths, eos, output layout, model mode,
``fill_mask``, and one-line errors for bad input."""

from __future__ import annotations

import pytest
import torch

from zoo.generation import GenerationConfig, fill_mask, generate

from .helpers import EOS, PAD, bert, build, gpt, prompt_batch, random_ids, t5


@pytest.mark.parametrize("num_beams", [1, 3], ids=["greedy", "beam"])
@pytest.mark.parametrize(("family", "position"),
                         [("gpt", "learned"), ("gpt", "rotary"), ("gpt", "alibi"), ("t5", "relative")])
def test_batch_of_different_lengths_equals_each_prompt_alone(family, position, num_beams):
    model = build(family, position=position, num_kv_heads=2)
    prompts, ids, mask = prompt_batch(family, lengths=(7, 2, 5, 4))
    batched = generate(model, ids, mask, max_new_tokens=6, num_beams=num_beams, eos_token_id=EOS)
    start = ids.shape[1] if family == "gpt" else 1
    for row, prompt in enumerate(prompts):
        alone = generate(model, prompt[None], max_new_tokens=6, num_beams=num_beams, eos_token_id=EOS)
        alone_new = alone[0, (len(prompt) if family == "gpt" else 1):]
        batched_new = batched[row, start:]
        assert torch.equal(batched_new[: len(alone_new)], alone_new)
        assert (batched_new[len(alone_new):] == PAD).all()  # the batch ran on longer for other rows


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_rows_stop_at_eos_and_are_padded(family):
    model = build(family, tie_embeddings=False)
    _, ids, mask = prompt_batch(family)
    start = ids.shape[1] if family == "gpt" else 1
    free = generate(model, ids, mask, max_new_tokens=12, eos_token_id=EOS)[:, start:].tolist()
    # Make a token that row 1 picks (for the first time, before any EOS) the eos: row 1 must end there.
    row = free[1]
    j = next(j for j in range(1, 12) if row[j] not in row[:j] and row[j] not in (PAD, EOS))
    eos = row[j]
    out = generate(model, ids, mask, max_new_tokens=12, eos_token_id=eos)[:, start:].tolist()
    for tokens, new in zip(free, out, strict=True):
        # The runs agree until the free run's EOS (an ordinary token now) or the new eos.
        agree = tokens.index(EOS) + 1 if EOS in tokens else len(tokens)
        if eos in tokens[:agree]:
            end = tokens.index(eos) + 1
            assert new[:end] == tokens[:end] and set(new[end:]) <= {PAD}  # eos, then padding
        else:
            assert new[:agree] == tokens[:agree]
    assert out[1][j] == eos and set(out[1][j + 1:]) <= {PAD}
    # Generation ends once every row has finished: row 1 alone stops right after its eos.
    alone = generate(model, ids[1:2], mask[1:2], max_new_tokens=12, eos_token_id=eos)[0, start:]
    assert alone.tolist() == row[: j + 1]
    # min_new_tokens holds eos back
    held = generate(model, ids, mask, max_new_tokens=12, min_new_tokens=j + 1, eos_token_id=eos)[:, start:]
    assert eos not in held[1, : j + 1].tolist()


def test_output_layout_follows_hugging_face():
    decoder, seq2seq = gpt(), t5()
    ids = random_ids(2, 5)
    out = generate(decoder, ids, max_new_tokens=4, min_new_tokens=4)
    assert out.shape == (2, 9) and torch.equal(out[:, :5], ids)  # prompt, then the new tokens
    out = generate(seq2seq, ids, max_new_tokens=4, min_new_tokens=4)
    assert out.shape == (2, 5) and (out[:, 0] == PAD).all()  # decoder start (the pad id), then new tokens
    out = generate(seq2seq, ids, max_new_tokens=4, min_new_tokens=4, decoder_start_token_id=2)
    assert (out[:, 0] == 2).all()


def test_generate_restores_the_model_mode_and_returns_an_ordinary_tensor():
    model = gpt(dropout=0.5).train()
    ids = random_ids(2, 5)
    first = generate(model, ids, max_new_tokens=5)
    assert model.training  # restored
    assert torch.equal(first, generate(model, ids, max_new_tokens=5))  # dropout was off
    assert not torch.is_inference(first) and not first.requires_grad
    model(first).sum().backward()  # usable as training input


def test_generate_accepts_the_task_that_holds_the_model():
    from zoo.tasks import CausalLM

    task = CausalLM(gpt().config)
    ids = random_ids(1, 4)
    assert torch.equal(generate(task, ids, max_new_tokens=3), generate(task.model, ids, max_new_tokens=3))


def test_fill_mask_gives_the_masked_lm_probabilities():
    model, mask_id = bert(), 4
    ids = random_ids(2, 6, vocab=50)
    ids[ids == mask_id] = 5
    ids[0, 2] = ids[1, 1] = ids[1, 4] = mask_id
    predictions = fill_mask(model, ids, mask_token_id=mask_id, top_k=3)
    assert predictions.positions.tolist() == [[0, 2], [1, 1], [1, 4]]
    probs = model(ids).softmax(dim=-1)
    for (row, column), token_ids, p in zip(predictions.positions, predictions.token_ids, predictions.probs,
                                           strict=True):
        expected = probs[row, column].topk(3)
        assert torch.equal(token_ids, expected.indices)
        torch.testing.assert_close(p, expected.values)


BAD_OPTIONS = [
    (dict(top_p=0.0), "top_p=0.0"),
    (dict(top_p=1.5), "top_p=1.5"),
    (dict(temperature=-1.0), "temperature=-1.0"),
    (dict(temperature=0.0), "temperature=0.0"),
    (dict(top_k=0), "top_k=0"),
    (dict(num_beams=2, do_sample=True), "num_beams=2"),
    (dict(num_beams=0), "num_beams=0"),
    (dict(max_new_tokens=0), "max_new_tokens=0"),
    (dict(min_new_tokens=9, max_new_tokens=4), "min_new_tokens=9"),
    (dict(early_stopping="sometimes"), "early_stopping='sometimes'"),
    (dict(seed=1, generator=torch.Generator()), "seed or generator"),
]


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS, ids=[n for _, n in BAD_OPTIONS])
def test_bad_options_fail_in_one_line_naming_the_value(options, named):
    with pytest.raises(ValueError) as error:
        generate(gpt(), random_ids(1, 3), **options)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_generation_config_validates_on_construction():
    with pytest.raises(ValueError, match="top_p=2"):
        GenerationConfig(top_p=2)


def test_bad_models_and_prompts_fail_in_one_line():
    cases = [
        (lambda: generate(bert(), random_ids(1, 3)), "fill_mask"),
        # learned positions: 60 + 10 > max_seq_len=64
        (lambda: generate(gpt(position="learned"), random_ids(1, 60), max_new_tokens=10), "max_seq_len=64"),
        (lambda: generate(t5(position="learned"), random_ids(1, 8), max_new_tokens=70), "max_seq_len=64"),
        # right padding would make the model continue from a pad token
        (lambda: generate(gpt(), random_ids(2, 4), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])), "left-padded"),
        (lambda: generate(gpt(), torch.full((1, 3), 99)), "vocab_size=50"),
        (lambda: generate(gpt(), torch.zeros(1, 0, dtype=torch.long)), "empty"),
        (lambda: fill_mask(gpt(), random_ids(1, 3), mask_token_id=4), "BERT"),
        (lambda: fill_mask(bert(), random_ids(1, 3), mask_token_id=99), "no mask token"),
    ]
    for call, named in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert named in str(error.value) and "\n" not in str(error.value)
    # Other position schemes have no table to outgrow.
    assert generate(gpt(position="rotary"), random_ids(1, 60), max_new_tokens=10).shape[1] <= 70
