"""Matched budgets: sizes land within tolerance, counts are the real ones, FLOPs follow the formula."""

from __future__ import annotations

import pytest

from zoo.compare import Budget, match_parameters, steps_for_budget
from zoo.compare.budget import non_embedding_parameters
from zoo.compare.modules import SuiteClassification, SuiteSeq2Seq
from zoo.compare.tasks import task_from_config
from zoo.models.registry import FAMILIES

BASE = {"vocab_size": 40, "num_layers": 2, "num_heads": 4, "max_seq_len": 64}


def matcher(family, num_classes=0):
    def make(fields):
        return FAMILIES[family].make_config(**fields)

    def count(config):
        return non_embedding_parameters(family, config, num_classes)

    return make, count


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("target", [30_000, 400_000])
def test_width_matching_lands_within_tolerance(family, target):
    make, count = matcher(family)
    config, params = match_parameters(make, count, BASE, Budget(params=target, tolerance=0.05), "test")
    assert abs(params - target) <= 0.05 * target
    real = FAMILIES[family].model_class(config)  # the meta-device count is the real one
    assert real.num_parameters(exclude_embeddings=True) == params
    assert config.embed_dim % (2 * config.num_heads) == 0


def test_depth_matching_and_classification_heads():
    make, count = matcher("t5", num_classes=5)
    fields = {**BASE, "embed_dim": 32}
    one_layer = count(make({**fields, "num_layers": 1}))
    config, params = match_parameters(make, count, fields, Budget(params=4 * one_layer, match="num_layers"), "test")
    assert config.num_layers == 4 and params == pytest.approx(4 * one_layer, rel=0.1)
    module = SuiteClassification("t5", config.to_dict(), _tokenizer(), num_classes=5)
    assert module.num_parameters() == params  # the 5-way head is counted


def test_a_budget_no_size_reaches_fails_in_one_line():
    make, count = matcher("gpt")
    with pytest.raises(ValueError) as error:
        match_parameters(make, count, {**BASE, "embed_dim": 64}, Budget(params=123_456, match="num_layers",
                                                                        tolerance=0.01), "entry 'gpt' on task 'copy'")
    message = str(error.value)
    assert "\n" not in message and "entry 'gpt' on task 'copy'" in message and "tolerance 1%" in message


def _tokenizer():
    return task_from_config({"type": "copy", "train_size": 20, "val_size": 4, "test_size": 4}).build(0).tokenizer


def test_flops_follow_kaplan_with_an_attention_term():
    tokenizer = _tokenizer()
    gpt = SuiteSeq2Seq("gpt", FAMILIES["gpt"].make_config(**{**BASE, "embed_dim": 32}).to_dict(), tokenizer)
    stack = sum(p.numel() for name, p in gpt.model.decoder.named_parameters() if "absolute_positions" not in name)
    work = gpt.runner.work("seq2seq", [(3, 3), (5, 5)])  # source [SEP] target </s>: 8 and 12 tokens
    assert work.tokens == 20
    assert gpt.flops(work) == 6 * stack * 20 + 6 * 32 * 2 * (8**2 + 12**2)

    t5 = SuiteSeq2Seq("t5", FAMILIES["t5"].make_config(**{**BASE, "embed_dim": 32}).to_dict(), tokenizer)
    encoder = sum(p.numel() for p in t5.model.encoder.parameters())
    decoder = sum(p.numel() for p in t5.model.decoder.parameters())
    work = t5.runner.work("seq2seq", [(3, 5)])  # encoder: source </s> = 4; decoder: <pad> target = 6
    assert (work.encoder_tokens, work.decoder_tokens) == (4, 6)
    assert t5.flops(work) == 6 * (encoder * 4 + decoder * 6) + 6 * 32 * 2 * (4**2 + 6**2 + 6 * 4)


def test_token_and_flop_budgets_set_the_steps():
    data = task_from_config({"type": "copy", "train_size": 50, "val_size": 4, "test_size": 4}).build(0)
    gpt = SuiteSeq2Seq("gpt", FAMILIES["gpt"].make_config(**{**BASE, "embed_dim": 32}).to_dict(), data.tokenizer)
    lengths = [(len(e["source"]), len(e["target"])) for e in data.examples["train"]]
    per_example = gpt.runner.work("seq2seq", lengths).tokens / 50
    steps = steps_for_budget(gpt, data, 10, Budget(tokens=10_000), default=7)
    assert steps == pytest.approx(10_000 / (10 * per_example), abs=1)
    assert steps_for_budget(gpt, data, 10, Budget(), default=7) == 7
    flops_steps = steps_for_budget(gpt, data, 10, Budget(flops=1e9), default=7)
    per_flop = gpt.flops(gpt.runner.work("seq2seq", lengths)) / 50
    assert flops_steps == pytest.approx(1e9 / (10 * per_flop), abs=1)
