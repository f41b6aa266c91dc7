"""LoRA and the other ``peft`` adapters on every family: frozen weights stay bit-identical and only
adapters (and a classifier's head) train, merged equals unmerged, checkpoints reload, targets that
match nothing fail in one line naming those that exist."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from finetune_helpers import (
    FAMILY_NAMES,
    instruction_data,
    labelled_data,
    save_checkpoint,
    snapshot,
    tiny_config,
    train_steps,
)

from zoo.adapters import (
    AdapterConfig,
    AdapterMethod,
    adaptable_names,
    apply_adapter,
    count_parameters,
    has_adapters,
    merge_adapters,
)
from zoo.models.registry import FAMILIES
from zoo.tasks import load_task
from zoo.tasks.classification import CLASSIFIERS
from zoo.tasks.instruction import INSTRUCTION_TASKS

pytest.importorskip("peft")

#: Every attention projection, named separately (queries, keys, values, outputs).
ATTENTION = ["q_proj", "k_proj", "v_proj", "out_proj"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models gain nothing from threads



def base_family(family: str) -> str:
    return "gpt" if family == "llama" else family


def classifier(family: str, vocab_size: int, labels, **kwargs):
    return CLASSIFIERS[base_family(family)](tiny_config(family, vocab_size), labels=labels, **kwargs)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("adapters")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_lora_trains_only_adapters_and_leaves_frozen_weights_bit_identical(family, data_dir):
    dm = labelled_data(data_dir, FAMILIES[family].shape)
    task = classifier(family, dm.vocab_size, dm.labels, adapter={"rank": 4, "target_modules": ATTENTION})
    trainable = {name for name, p in task.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name or name.startswith("head.") for name in trainable)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable if ".lora_" in name} == set(ATTENTION)
    before = snapshot(task)
    train_steps(task, dm.train_dataloader(), steps=3)
    after = task.state_dict()
    for name, tensor in before.items():
        if ".lora_" in name or name.startswith("head."):
            continue
        assert torch.equal(tensor, after[name]), f"{name} changed"
    assert any(not torch.equal(before[n], after[n]) for n in before if ".lora_B" in n)  # B starts at zero


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_merged_equals_unmerged_and_keeps_the_plain_names(family, data_dir):
    shape = FAMILIES[family].shape
    if shape == "encoder":
        dm = labelled_data(data_dir, shape)
        task = classifier(family, dm.vocab_size, dm.labels, adapter={"target_modules": ATTENTION + ["down_proj"]})
    else:
        dm = instruction_data(data_dir, shape)
        task = INSTRUCTION_TASKS[base_family(family)](tiny_config(family, dm.vocab_size),
                                                      adapter={"target_modules": ATTENTION + ["down_proj"]})
    train_steps(task, dm.train_dataloader(), steps=3)
    task.eval()
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        unmerged = task(batch["input_ids"], batch["attention_mask"]) if shape == "encoder" else \
            task.logits_and_labels(batch)[0]
        merge_adapters(task.model)
        merged = task(batch["input_ids"], batch["attention_mask"]) if shape == "encoder" else \
            task.logits_and_labels(batch)[0]
    assert not has_adapters(task.model)
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    plain = FAMILIES[family].model_class(tiny_config(family, dm.vocab_size))
    assert list(task.model.state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize("method", get_args(AdapterMethod))  # every name the config accepts
def test_every_adapter_method_trains_and_reloads_from_a_checkpoint(method, data_dir, tmp_path):
    dm = labelled_data(data_dir, "decoder")
    adapter = {"method": method, "rank": 2, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    task = classifier("gpt", dm.vocab_size, dm.labels, adapter=adapter)
    train_steps(task, dm.train_dataloader(), steps=2)
    path = save_checkpoint(task, tmp_path / f"{method}.ckpt", dm.tokenizer_file)
    reloaded = load_task(str(path)).eval()
    assert reloaded.hparams["adapter"]["method"] == method and has_adapters(reloaded.model)
    batch = next(iter(dm.val_dataloader()))
    task.eval()
    assert torch.equal(task(batch["input_ids"], batch["attention_mask"]),
                       reloaded(batch["input_ids"], batch["attention_mask"]))
    trainable, total = count_parameters(task)
    assert 0 < trainable < total / 2


def test_queries_keys_values_and_outputs_are_targetable_separately(data_dir):
    dm = labelled_data(data_dir, "decoder")
    for target in ATTENTION:
        task = classifier("llama", dm.vocab_size, dm.labels, adapter={"target_modules": [target]})
        adapted = {name.split(".lora_")[0] for name, _ in task.named_parameters() if ".lora_" in name}
        assert adapted and all(name.endswith(f"self_attn.{target}") for name in adapted), target


def test_targets_matching_nothing_fail_in_one_line_listing_the_names(data_dir):
    dm = labelled_data(data_dir, "encoder")
    with pytest.raises(ValueError) as error:
        classifier("bert", dm.vocab_size, dm.labels, adapter={"target_modules": ["query", "v_proj"]})
    message = str(error.value)
    assert "\n" not in message and "adapter.target_modules ['query'] match no module of this BERT" in message
    assert all(name in message for name in ("'q_proj'", "'v_proj'", "'out_proj'", "'up_proj'", "'down_proj'"))
    with pytest.raises(ValueError, match="adapter.method='prefix' must be one of"):
        AdapterConfig(method="prefix")
    with pytest.raises(ValueError, match=r"adapter: unknown field\(s\) \['r'\]"):
        AdapterConfig.from_value({"r": 4})


def test_adaptable_names_lists_the_projection_names():
    model = FAMILIES["t5"].model_class(tiny_config("t5", 50))
    names = adaptable_names(model)
    assert set(ATTENTION) <= set(names) and "embed_tokens" in names
    apply_adapter(model, AdapterConfig(target_modules=["q_proj"]))
    assert has_adapters(model)


def test_an_adapter_on_the_bert_output_projection_changes_the_logits():
    """BERT's MLM head adds its bias inside one ``F.linear`` for a plain decoder; a peft-wrapped decoder
    must still be called, or its adapter would be skipped silently."""
    torch.manual_seed(0)
    model = FAMILIES["bert"].model_class(FAMILIES["bert"].make_config(
        vocab_size=100, embed_dim=32, num_layers=1, num_heads=2, max_seq_len=16)).eval()
    ids = torch.randint(0, 100, (2, 8))
    with torch.no_grad():
        base = model(ids)
        apply_adapter(model, AdapterConfig(method="lora", rank=2, target_modules=["decoder"]))
        assert torch.equal(model(ids), base)  # LoRA's B starts at zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.1)
        assert (model(ids) - base).abs().max() > 0.1
