"""Instruction fine-tuning: decoders and T5 from a zoo pretraining checkpoint and from Hugging Face
weights, the loss on the response only, and greedy answers in the trained format."""

from __future__ import annotations

import pytest
import torch
from finetune_helpers import (
    hf_directory,
    instruction_data,
    loss_of,
    pretraining_checkpoint,
    tiny_config,
    train_steps,
)

from zoo.generation import generate
from zoo.models.registry import FAMILIES
from zoo.tasks.instruction import INSTRUCTION_TASKS, InstructionLM

GENERATIVE = ("gpt", "llama", "t5")

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models gain nothing from threads



def task_class(family: str):
    return INSTRUCTION_TASKS["gpt" if family == "llama" else family]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("instruction")


@pytest.mark.parametrize("source", ["zoo", "hf"])
@pytest.mark.parametrize("family", GENERATIVE)
def test_generative_families_fine_tune_from_pretrained_weights(family, source, data_dir, tmp_path):
    dm = instruction_data(data_dir, FAMILIES[family].shape)
    if source == "zoo":
        pretrained = pretraining_checkpoint(family, tmp_path, dm.tokenizer_file, dm.vocab_size)
    else:
        pytest.importorskip("transformers")
        pretrained = hf_directory(family, tmp_path, dm.vocab_size)
    task = task_class(family)(tiny_config(family, dm.vocab_size), pretrained=str(pretrained))
    losses = train_steps(task, dm.train_dataloader(), steps=3)
    assert all(torch.isfinite(torch.tensor(losses)))


def test_the_loss_ignores_the_prompt(data_dir):
    dm = instruction_data(data_dir, "decoder")
    task = InstructionLM(tiny_config("gpt", dm.vocab_size)).eval()
    batch = next(iter(dm.val_dataloader()))
    tok = dm.tokenizer
    changed = batch["input_ids"].clone()
    sep = (changed == tok.sep_id).int().argmax(1)
    changed[:, 0] = tok.unk_id  # a different prompt token ...
    logits, labels = task.logits_and_labels({**batch, "input_ids": changed})
    assert (labels[torch.arange(len(sep)), sep - 1] == -100).all()  # ... that is never a target
    assert (labels[torch.arange(len(sep)), sep] != -100).all()  # the first response token is
    assert torch.isfinite(loss_of(task, batch))


def test_a_decoder_learns_to_answer_in_the_trained_format(data_dir):
    dm = instruction_data(data_dir, "decoder")
    task = InstructionLM(tiny_config("gpt", dm.vocab_size, embed_dim=64))
    losses = train_steps(task, dm.train_dataloader(), steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    tok = dm.tokenizer
    prompt, answer = dm.raw_examples("train")[0]
    ids = torch.tensor([tok.encode(prompt) + [tok.sep_id]])
    out = generate(task.model.eval(), ids, max_new_tokens=len(answer) + 1, eos_token_id=tok.eos_id,
                   pad_token_id=tok.pad_id)
    completion = tok.decode([t for t in out[0, ids.shape[1]:].tolist() if t != tok.eos_id])
    assert sum(a == b for a, b in zip(completion, answer, strict=False)) >= len(answer) // 2  # a training pair
