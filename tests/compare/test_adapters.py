"""Family adapters: greedy decoding equals a plain argmax loop, every registry family has a runner,
presets reach the comparison's configs, and FLOPs count the layers the config says."""

from __future__ import annotations

import pytest
import torch

from zoo.compare import load_comparison, plan
from zoo.compare.adapters import RUNNERS, stack_parameters, unsupported
from zoo.compare.data import SuiteDataModule
from zoo.compare.modules import SuiteSeq2Seq
from zoo.compare.tasks import task_from_config
from zoo.models import GPTConfig
from zoo.models.registry import FAMILIES, get_family

from .conftest import TINY_REVERSE


def reference_greedy(model, shape: str, source: list[int], tokenizer, max_new_tokens: int) -> list[int]:
    """One example at a time, no padding, no cache: recompute the whole sequence, take the argmax."""
    out: list[int] = []
    for _ in range(max_new_tokens):
        if shape == "decoder":  # prefix LM: source [SEP] output so far
            logits = model(torch.tensor([source + [tokenizer.sep_id] + out]))
        else:  # encoder-decoder: source </s> → <pad> output so far
            logits = model(torch.tensor([source + [tokenizer.eos_id]]), torch.tensor([[tokenizer.pad_id] + out]))
        token = int(logits[0, -1].argmax())
        if token == tokenizer.eos_id:
            break
        out.append(token)
    return out


@pytest.mark.parametrize("family, position", [("gpt", "learned"), ("gpt", "alibi"), ("llama", "rotary"),
                                              ("t5", "relative"), ("t5", "learned")])
def test_greedy_decoding_equals_a_plain_argmax_loop(family, position):
    data = task_from_config({**TINY_REVERSE, "train_size": 128, "val_size": 24}).build(0)
    tokenizer = data.tokenizer
    config = get_family(family).make_config(vocab_size=tokenizer.vocab_size, embed_dim=32, num_layers=2, num_heads=4,
                                            num_kv_heads=2, max_seq_len=16, dropout=0.0, position=position)
    torch.manual_seed(0)
    module = SuiteSeq2Seq(family, config.to_dict(), tokenizer)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for batch in SuiteDataModule(data, batch_size=32).train_dataloader():  # a few steps: outputs end at eos
        logits, labels = module.runner.seq2seq(batch)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    batch = next(iter(SuiteDataModule(data, eval_batch_size=24).val_dataloader()))  # sources of mixed lengths
    assert len(set(batch["source_mask"].sum(1).tolist())) > 1
    max_new_tokens = 7
    with torch.no_grad():
        outputs = module.runner.generate(batch, max_new_tokens)
        sources = [row[keep].tolist() for row, keep in zip(batch["source_ids"], batch["source_mask"], strict=True)]
        expected = [reference_greedy(module.model, module.family.shape, s, tokenizer, max_new_tokens)
                    for s in sources]
    assert outputs == expected
    assert any(len(o) < max_new_tokens for o in outputs)  # some rows stopped at eos
    if position == "learned":  # decoding stops where the position table (16) ends instead of failing
        room = 16 - (max(map(len, sources)) + 1 if module.family.shape == "decoder" else 0)
        with torch.no_grad():
            assert max(map(len, module.runner.generate(batch, 100))) <= room


def test_bert_fills_its_mask_positions_in_one_forward():
    data = task_from_config(TINY_REVERSE).build(0)
    config = get_family("bert").make_config(vocab_size=data.tokenizer.vocab_size, embed_dim=16, num_layers=1,
                                            num_heads=2, max_seq_len=16, dropout=0.0)
    module = SuiteSeq2Seq("bert", config.to_dict(), data.tokenizer).eval()
    batch = next(iter(SuiteDataModule(data, eval_batch_size=8).val_dataloader()))
    calls = []
    module.model.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        outputs = module.runner.generate(batch, 100)
    assert calls == [1]
    assert [len(o) for o in outputs] == batch["source_mask"].sum(1).tolist()  # one token per [MASK]


def test_every_registry_family_has_a_runner_and_compare_accepts_exactly_the_registry(tmp_path):
    for name, family in FAMILIES.items():
        runner = RUNNERS[family.shape]
        assert runner.shape == family.shape
        assert (unsupported(name, "lm", True) is None) == (family.shape != "encoder")
        assert (unsupported(name, "seq2seq", False) is None) == (family.shape != "encoder")
        assert unsupported(name, "classification", False) is None
    path = tmp_path / "all.yaml"
    path.write_text(f"families: {sorted(FAMILIES)}\ntasks: [copy]\n")
    assert [e.family for e in load_comparison(path).entries] == sorted(FAMILIES)
    path.write_text("families: [gpt, mamba]\ntasks: [copy]\n")
    with pytest.raises(ValueError, match=r"entry 'mamba': unknown family 'mamba'; choose one of \['bert', 'gpt'"):
        load_comparison(path)


def test_the_llama_preset_reaches_the_plan_and_the_comparison_fields_win(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("families: [gpt, llama]\ntasks: [{type: copy, train_size: 20, val_size: 4, test_size: 4}]\n"
                    "model: {embed_dim: 16, num_heads: 4, num_kv_heads: 1, num_layers: 1}\n")
    gpt, llama = (run.config for run in plan(load_comparison(path)))
    recipe = ("norm", "activation", "position", "bias", "tie_embeddings")
    assert [getattr(gpt, f) for f in recipe] == [getattr(GPTConfig(), f) for f in recipe]
    assert [getattr(llama, f) for f in recipe] == [getattr(GPTConfig.llama(), f) for f in recipe]
    assert (llama.norm, llama.activation, llama.position) == ("rmsnorm", "swiglu", "rotary")
    assert llama.num_kv_heads == 1 and llama.num_heads == 4  # the file's fields over the preset's (8, 2)


def test_flops_count_the_layers_and_stack_parameters_the_config_builds():
    tokenizer = task_from_config(TINY_REVERSE).build(0).tokenizer
    config = get_family("t5").make_config(vocab_size=tokenizer.vocab_size, embed_dim=16, num_heads=2, num_layers=1,
                                          num_decoder_layers=3, position="learned", max_seq_len=16)
    t5 = SuiteSeq2Seq("t5", config.to_dict(), tokenizer)
    assert (len(t5.model.encoder.layers), len(t5.model.decoder.layers)) == (1, 3)
    stacks = stack_parameters(t5.model)
    for name in ("encoder", "decoder"):
        stack = getattr(t5.model, name)
        table = sum(p.numel() for p in stack.absolute_positions.parameters())
        assert table == 16 * 16 and stacks[name] == sum(p.numel() for p in stack.parameters()) - table
    work = t5.runner.work("seq2seq", [(3, 5)])  # encoder: 4 tokens; decoder: 6
    dense = 6 * (stacks["encoder"] * 4 + stacks["decoder"] * 6)
    assert t5.flops(work) == dense + 6 * 16 * (1 * 4**2 + 3 * (6**2 + 6 * 4))
