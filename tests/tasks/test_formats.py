"""The gate of the per-shape format (``zoo.tasks.formats``): every layout it makes, for every family
shape and kind of task, is bitwise the batch the code before it made.

The expected batches are written here as plain list code (``reference_*``), one obviously-correct
line per rule of the format. The first version of this file (commit a0ed0df) checked the code the format
replaced against these references — the instruction and labelled collators, ``zoo compare``'s
family runners (seq2seq inputs, labels and generation prompts of every shape), ``zoo generate``'s
prompt rows — so they are what that code produced; they now hold the format and its callers to it.
Two of compare's layouts changed on purpose and are not here: its encoder read classification text
without ``[CLS]``/``[SEP]`` (it now reads zoo fit's), and its encoder-decoder language modelling
split blocks in half (compare's ``lm`` task is now zoo fit's causal LM, for decoders).
"""

from __future__ import annotations

import pytest
import torch

from zoo.data.tokenizers import CharTokenizer

IGNORE = -100
SHAPES = ("encoder", "decoder", "encoder-decoder")
TOKENIZER = CharTokenizer(list("abcdefghij+0123456789"), num_sentinels=3)

# (prompt/source, response/target) token ids: mixed lengths, one empty response, one long prompt.
PAIRS = [
    (TOKENIZER.encode("abc"), TOKENIZER.encode("cba")),
    (TOKENIZER.encode("j"), TOKENIZER.encode("j")),
    (TOKENIZER.encode("hgfedcba"), TOKENIZER.encode("abcdefgh")),
    (TOKENIZER.encode("ab"), TOKENIZER.encode("")),
    (TOKENIZER.encode("12+345"), TOKENIZER.encode("357")),
]
EQUAL_PAIRS = [pair for pair in PAIRS if len(pair[0]) == len(pair[1])]
TEXTS = [TOKENIZER.encode(t) for t in ("abcdef", "a", "", "0123456789abcdefghij", "ba")]


def padded(rows: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
    width = max(map(len, rows)) if width is None else width
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def mask_of(rows: list[list[int]], width: int | None = None) -> torch.Tensor:
    width = max(map(len, rows)) if width is None else width
    return torch.tensor([[True] * len(row) + [False] * (width - len(row)) for row in rows])


# ---------------------------------------------------------------------------------------------
# The references: what each shape's layout is, in plain list code.


def reference_seq2seq(shape: str, pairs, max_len: int | None = None, max_response_len: int | None = None):
    """Training batch of (source, target) pairs. With ``max_len`` (instruction data), the target is
    cut to ``max_response_len - 1`` tokens and the source to what ``max_len`` leaves."""
    t = TOKENIZER
    cut = [(s, r[: max_response_len - 1] if max_response_len else r) for s, r in pairs]
    if shape == "decoder":  # source [SEP] target </s>, loss on target </s>
        rows, labels = [], []
        for s, r in cut:
            response = r + [t.eos_id]
            prompt = (s[: max(max_len - 1 - len(response), 0)] if max_len else s) + [t.sep_id]
            rows.append(prompt + response)
            labels.append([IGNORE] * len(prompt) + response)
        return {"input_ids": padded(rows, t.pad_id), "labels": padded(labels, IGNORE)}
    if shape == "encoder-decoder":  # source </s> -> <pad> target, predicting target </s>
        sources = [(s[: max_len - 1] if max_len else s) + [t.eos_id] for s, _ in cut]
        return {"input_ids": padded(sources, t.pad_id), "attention_mask": mask_of(sources),
                "decoder_input_ids": padded([[t.pad_id] + r for _, r in cut], t.pad_id),
                "labels": padded([r + [t.eos_id] for _, r in cut], IGNORE)}
    # encoder: source [SEP] then one [MASK] per source token, predicting the target there
    rows = [s + [t.sep_id] + [t.mask_id] * len(s) for s, _ in cut]
    labels = [[IGNORE] * (len(s) + 1) + r for s, r in cut]
    width = max(map(len, rows))
    return {"input_ids": padded(rows, t.pad_id), "attention_mask": mask_of(rows),
            "labels": padded(labels, IGNORE, width)}


def reference_classification(shape: str, texts, max_len: int = 10_000, layout: str = "auto"):
    """Classification inputs: ``[CLS] text [SEP]`` for encoders, ``text </s>`` otherwise."""
    t = TOKENIZER
    layout = ("cls_sep" if shape == "encoder" else "eos") if layout == "auto" else layout
    if layout == "cls_sep":
        rows = [[t.cls_id] + ids[: max_len - 2] + [t.sep_id] for ids in texts]
    else:
        rows = [ids[: max_len - 1] + [t.eos_id] for ids in texts]
    return {"input_ids": padded(rows, t.pad_id), "attention_mask": mask_of(rows)}


def reference_prompts(shape: str, sources, instruction: bool = True):
    """Generation inputs ``(ids, mask)``: decoders left-padded (``source [SEP]`` after instruction
    tuning, else the text, or ``</s>`` for an empty one), encoder-decoders ``source </s>`` right-padded,
    encoders ``source [SEP] [MASK]...`` (one per source token) right-padded."""
    t = TOKENIZER
    if shape == "decoder":
        rows = [s + [t.sep_id] if instruction else (s or [t.eos_id]) for s in sources]
        width = max(map(len, rows))
        ids = torch.tensor([[t.pad_id] * (width - len(r)) + r for r in rows])
        return ids, torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
    rows = [s + [t.eos_id] for s in sources] if shape == "encoder-decoder" else \
        [s + [t.sep_id] + [t.mask_id] * len(s) for s in sources]
    return padded(rows, t.pad_id), mask_of(rows)


def assert_same(batch, expected, keys=None):
    for key in keys or expected:
        assert batch[key].dtype == expected[key].dtype, key
        assert torch.equal(batch[key], expected[key]), (key, batch[key], expected[key])


# ---------------------------------------------------------------------------------------------
# The data modules' collators and zoo generate, which lay out through the format.


class _Data:
    """What the fine-tuning collators read from their data module."""

    def __init__(self, max_seq_len, max_response_len=16, input_format="auto"):
        self.tokenizer, self.max_seq_len, self.max_response_len = TOKENIZER, max_seq_len, max_response_len
        self.input_format, self._splits = input_format, None


@pytest.mark.parametrize("shape", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("max_len", [64, 9])
def test_the_instruction_collator_is_the_reference(shape, max_len):
    from zoo.data.instruction import InstructionDataModule

    data = _Data(max_len, max_response_len=5)
    collate = InstructionDataModule._collator(data, shape)
    batch = collate(list(enumerate(PAIRS)))
    assert_same(batch, reference_seq2seq(shape, PAIRS, max_len, 5))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["auto", "cls_sep", "eos"])
def test_the_labelled_collator_is_the_reference(shape, layout):
    from zoo.data.labelled import LabelledTextDataModule

    data = _Data(8, input_format=layout)
    collate = LabelledTextDataModule._collator(data, shape)
    batch = collate([(i, (ids, i % 2)) for i, ids in enumerate(TEXTS)])
    assert_same(batch, reference_classification(shape, TEXTS, 8, layout))


FAMILY = {"encoder": "bert", "decoder": "gpt", "encoder-decoder": "t5"}


@pytest.mark.parametrize("shape, instruction", [("decoder", True), ("decoder", False), ("encoder-decoder", False)])
def test_zoo_generate_prompts_are_the_reference(shape, instruction, monkeypatch):
    import argparse

    import zoo.commands.generate as command
    import zoo.tasks.formats as formats
    from zoo.models.registry import get_family

    seen = {}

    def fake_generate(model, ids, mask, **options):
        seen.update(ids=ids, mask=mask)
        return torch.cat((ids, ids.new_full((ids.shape[0], 1), TOKENIZER.eos_id)), 1)

    monkeypatch.setattr(formats, "generate", fake_generate)
    family = get_family(FAMILY[shape])
    model = family.model_class(family.make_config(vocab_size=TOKENIZER.vocab_size, embed_dim=8, num_layers=1,
                                                  num_heads=2, max_seq_len=64))
    texts = ["abc", "j", "", "hgfedcba"]
    args = argparse.Namespace(seed=None, device="cpu", max_new_tokens=3, min_new_tokens=0, do_sample=False,
                              temperature=1.0, top_k=None, top_p=None, num_beams=1, length_penalty=1.0,
                              no_cache=False, crop_context=False, batch_size=16, jsonl=False,
                              instruction=instruction)
    command.complete(model, TOKENIZER, texts, args)
    ids, mask = reference_prompts(shape, [TOKENIZER.encode(t) for t in texts], instruction)
    assert torch.equal(seen["ids"], ids) and torch.equal(seen["mask"].bool(), mask)


# ---------------------------------------------------------------------------------------------
# The format itself against the references.


@pytest.mark.parametrize("shape", SHAPES)
def test_the_format_lays_out_seq2seq_as_the_reference(shape):
    from zoo.tasks.formats import FORMATS

    layout = FORMATS[shape](TOKENIZER)
    pairs = EQUAL_PAIRS if shape == "encoder" else PAIRS
    batch = layout.seq2seq(pairs)
    assert_same(batch, reference_seq2seq(shape, pairs))
    # The prompts and references it reads back from a batch are the sources and targets it laid out.
    ids, mask = reference_prompts(shape, [s for s, _ in pairs])
    assert [row[m].tolist() for row, m in zip(ids, mask, strict=True)] == layout.prompts(batch)
    assert layout.references(batch) == [list(t) for _, t in pairs]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout_name", ["auto", "cls_sep", "eos"])
def test_the_format_lays_out_classification_as_the_reference(shape, layout_name):
    from zoo.tasks.formats import FORMATS

    batch = FORMATS[shape](TOKENIZER).classification(TEXTS, 8, layout_name)
    assert_same(batch, reference_classification(shape, TEXTS, 8, layout_name))


@pytest.mark.parametrize("shape, instruction", [("decoder", True), ("decoder", False), ("encoder-decoder", False),
                                                ("encoder", True)])
def test_the_format_pads_prompts_as_the_reference(shape, instruction):
    from zoo.tasks.formats import FORMATS

    layout = FORMATS[shape](TOKENIZER)
    sources = [s for s, _ in PAIRS]
    ids, mask = layout.pad_prompts([layout.prompt(s, instruction=instruction) for s in sources])
    expected_ids, expected_mask = reference_prompts(shape, sources, instruction)
    assert torch.equal(ids, expected_ids) and torch.equal(mask, expected_mask)


def test_an_encoder_refuses_targets_longer_than_their_sources_in_one_line():
    from zoo.tasks.formats import FORMATS

    with pytest.raises(ValueError, match=r"per source token.*example 0 has 3 source and 4 target") as error:
        FORMATS["encoder"](TOKENIZER).seq2seq([(TOKENIZER.encode("abc"), TOKENIZER.encode("abcd"))])
    assert "\n" not in str(error.value)
