"""Matched budgets: sizes land within tolerance, counts are the real ones (a mixture of experts counts
the experts a token runs), and a token or FLOP budget buys the steps zoo.flops says."""

from __future__ import annotations

import math
import statistics

import pytest

from zoo.compare import Budget, load_comparison, match_parameters, plan
from zoo.compare.budget import non_embedding_parameters
from zoo.data import InstructionDataModule
from zoo.flops import batch_tokens, training_flops
from zoo.models.registry import FAMILIES
from zoo.tasks.classification import CLASSIFIERS
from zoo.tasks.formats import FORMATS

from .conftest import write_study

BASE = {"vocab_size": 40, "num_layers": 2, "num_heads": 4, "max_seq_len": 64}


def matcher(family, num_classes=0, active=False):
    def make(fields):
        return FAMILIES[family].make_config(**fields)

    def count(config):
        return non_embedding_parameters(family, config, num_classes, active=active)

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
    classifier = CLASSIFIERS["t5"](config, num_labels=5)  # zoo fit's classifier: model and head
    head = sum(p.numel() for p in classifier.head.parameters())
    assert classifier.model.num_parameters(exclude_embeddings=True) + head == params


def test_a_mixture_of_experts_counts_the_experts_a_token_runs():
    config = FAMILIES["llama"].make_config(**BASE, embed_dim=32, num_experts=4, experts_per_token=2)
    model = FAMILIES["llama"].model_class(config)
    experts = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
    total = non_embedding_parameters("llama", config)
    assert total == model.num_parameters(exclude_embeddings=True)
    assert non_embedding_parameters("llama", config, active=True) == total - experts // 2  # 2 of 4 run
    make, count = matcher("llama", active=True)
    fields = {**BASE, "num_experts": 4, "experts_per_token": 2}
    moe, _ = match_parameters(make, count, fields, Budget(params=60_000), "test")
    dense, _ = match_parameters(make, count, BASE, Budget(params=60_000), "test")
    assert moe.embed_dim >= dense.embed_dim * 0.8  # matched on active parameters: not starved of width


def test_a_budget_no_size_reaches_fails_in_one_line():
    make, count = matcher("gpt")
    with pytest.raises(ValueError) as error:
        match_parameters(make, count, {**BASE, "embed_dim": 64}, Budget(params=123_456, match="num_layers",
                                                                        tolerance=0.01), "entry 'gpt' on task 'copy'")
    message = str(error.value)
    assert "\n" not in message and "entry 'gpt' on task 'copy'" in message and "tolerance 1%" in message


@pytest.mark.parametrize("budget", [{"tokens": 10_000}, {"flops": 2e8}])
def test_a_token_or_flop_budget_buys_the_steps_zoo_flops_counts(tmp_path, budget):
    study = write_study(tmp_path / "budget.yaml", budget=budget,
                        tasks=[{"type": "copy", "train_size": 50, "val_size": 4, "test_size": 4, "max_len": 5}])
    t5, gpt = plan(load_comparison(study, output_dir=str(tmp_path / "out")))
    for run in (t5, gpt):
        family = FAMILIES[run.entry.family]
        data = InstructionDataModule(**run.fit_config["data"]["init_args"], shape=family.shape)
        tok = data.tokenizer
        config = family.make_config(**run.fit_config["model"]["init_args"]["config"], vocab_size=tok.vocab_size,
                                    pad_token_id=tok.pad_id, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
        examples = [FORMATS[family.shape](tok).seq2seq([pair]) for pair in data.encoded("train")]
        tokens = statistics.fmean(batch_tokens(b) for b in examples)  # unpadded, one example at a time
        flops = statistics.fmean(training_flops(config, b) for b in examples)
        per_step = 8 * (tokens if "tokens" in budget else flops)  # batch_size 8
        assert run.steps == math.ceil(next(iter(budget.values())) / per_step)
        assert run.fit_config["trainer"]["max_steps"] == run.fit_config["model"]["init_args"]["max_steps"] == run.steps
        assert run.tokens == round(run.steps * 8 * tokens) and run.flops == pytest.approx(run.steps * 8 * flops)
    # T5 reads source </s> with its encoder and <pad> target with its decoder, GPT source [SEP] target </s>:
    # as many tokens, but each of T5's passes through one of its two stacks.
    assert t5.tokens / t5.steps == pytest.approx(gpt.tokens / gpt.steps, rel=1e-3)
