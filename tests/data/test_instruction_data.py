"""InstructionDataModule: the trained format per shape (loss on the response only) and its checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.data.classification import AREA_ANSWERS, AREA_QUESTION, MODULE_QUESTION, python_docs_instructions
from zoo.data.instruction import InstructionDataModule
from zoo.data.objectives import IGNORE_INDEX

PAIRS = [{"source": f"reverse {w}", "target": w[::-1]} for w in ("abc", "hello", "zoo", "token", "lora", "peft")]


def files(tmp_path: Path) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS * 4))
    return str(path)


def module(tmp_path: Path, shape: str, **kwargs) -> InstructionDataModule:
    dm = InstructionDataModule(data_files={"train": files(tmp_path), "validation": files(tmp_path)},
                               prompt_field="source", response_field="target", tokenizer="char", shape=shape,
                               batch_size=3, **kwargs)
    dm.setup("fit")
    return dm


def test_decoder_rows_are_prompt_sep_response_eos_with_labels_on_the_response_only(tmp_path):
    dm = module(tmp_path, "decoder")
    tok = dm.tokenizer
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"input_ids", "labels", "index"}  # no mask: right padding under causal attention
    ids, labels = batch["input_ids"][1].tolist(), batch["labels"][1].tolist()
    sep = ids.index(tok.sep_id)
    assert tok.decode(ids[:sep]) == "reverse hello"
    assert all(label == IGNORE_INDEX for label in labels[: sep + 1])
    answer = [t for t in labels if t != IGNORE_INDEX]
    assert answer[-1] == tok.eos_id and tok.decode(answer[:-1]) == "olleh"
    assert ids[sep + 1 : sep + 1 + len(answer)] == answer  # labels are the inputs; the task shifts them


def test_encoder_decoder_batches_follow_t5(tmp_path):
    dm = module(tmp_path, "encoder-decoder")
    tok = dm.tokenizer
    batch = next(iter(dm.val_dataloader()))
    source = batch["input_ids"][1][batch["attention_mask"][1]].tolist()
    assert source[-1] == tok.eos_id and tok.decode(source) == "reverse hello"
    labels = [t for t in batch["labels"][1].tolist() if t != IGNORE_INDEX]
    assert labels[-1] == tok.eos_id and tok.decode(labels) == "olleh"
    assert batch["decoder_input_ids"][1].tolist()[: len(labels)] == [tok.pad_id, *labels[:-1]]


def test_long_examples_are_cut_to_fit(tmp_path):
    dm = module(tmp_path, "decoder", max_seq_len=8, max_response_len=3)
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape[1] <= 8
    assert sum(t != IGNORE_INDEX for t in batch["labels"][1].tolist()) == 3  # 2 response tokens + </s>


def test_bad_input_in_one_line(tmp_path):
    fields = r"has no field 'prompt' \(prompt_field\); its fields are \['source', 'target'\]"
    with pytest.raises(ValueError, match=fields):
        InstructionDataModule(data_files=files(tmp_path))
    with pytest.raises(ValueError, match="max_response_len=200 must be in"):
        InstructionDataModule(max_response_len=200)
    dm = InstructionDataModule(data_files=files(tmp_path), prompt_field="source", response_field="target",
                               tokenizer="char", shape="encoder")
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"one \[MASK\] per source token.*(train|validation) example \d+ has"):
        dm.val_dataloader()
    with pytest.raises(ValueError, match=r"\(shape='auto'\) takes the shape from a zoo task"):
        InstructionDataModule(data_files=files(tmp_path), prompt_field="source", response_field="target",
                              tokenizer="char").val_dataloader()


def test_builtin_instructions_ask_about_unseen_documents():
    pairs = python_docs_instructions(0, train_per_question=100, eval_per_question=20)
    assert len(pairs["validation"]) == 40
    questions = {p.split("?")[0] + "?" for p, _ in pairs["train"]}
    assert questions == {AREA_QUESTION, MODULE_QUESTION}
    assert {r for p, r in pairs["validation"] if p.startswith(AREA_QUESTION)} <= set(AREA_ANSWERS.values())
    assert not {p for p, _ in pairs["train"]} & {p for p, _ in pairs["validation"]}
