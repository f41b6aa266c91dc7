"""The gate of the per-shape format (``zoo.tasks.formats``): every layout it makes, for every family
shape and kind of task, is bitwise the batch the code before it made.

The expected batches are written here as plain list code (``reference_*``), one obviously-correct
line per rule of the format. The first version of this file also held the producers of the code the
format replaced (instruction and labelled collators, ``zoo compare``'s family runners, ``zoo
generate``'s prompt rows) and checked them against these references, so the references are what
that code produced; they now check the format and the data modules that use it.
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
# The code before the format, checked against the references (this version of the file only).


class _Data:
    """What the fine-tuning collators read from their data module."""

    def __init__(self, max_seq_len, max_response_len=16, input_format="auto"):
        self.tokenizer, self.max_seq_len, self.max_response_len = TOKENIZER, max_seq_len, max_response_len
        self.input_format = input_format


@pytest.mark.parametrize("shape", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("max_len", [64, 9])
def test_old_instruction_collator_is_the_reference(shape, max_len):
    from zoo.data.instruction import InstructionDataModule

    data = _Data(max_len, max_response_len=5)
    collate = InstructionDataModule._collator(data, shape)
    batch = collate(list(enumerate(PAIRS)))
    assert_same(batch, reference_seq2seq(shape, PAIRS, max_len, 5))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["auto", "cls_sep", "eos"])
def test_old_labelled_collator_is_the_reference(shape, layout):
    from zoo.data.labelled import LabelledTextDataModule

    data = _Data(8, input_format=layout)
    data.resolved_input_format = lambda s: LabelledTextDataModule.resolved_input_format(data, s)
    collate = LabelledTextDataModule._collator(data, shape)
    batch = collate([(i, (ids, i % 2)) for i, ids in enumerate(TEXTS)])
    assert_same(batch, reference_classification(shape, TEXTS, 8, layout))


FAMILY = {"encoder": "bert", "decoder": "gpt", "encoder-decoder": "t5"}


def _old_compare_inputs(shape, pairs):
    """What ``zoo compare``'s runner fed the model for a seq2seq batch, and its labels."""
    from zoo.compare.adapters import RUNNERS
    from zoo.compare.data import collate
    from zoo.models.registry import get_family

    family = get_family(FAMILY[shape])
    model = family.model_class(family.make_config(vocab_size=TOKENIZER.vocab_size, embed_dim=8, num_layers=1,
                                                  num_heads=2, max_seq_len=64))
    seen = {}
    if shape == "encoder":
        encode = model.encode
        model.encode = lambda ids, mask: seen.update(input_ids=ids, attention_mask=mask) or encode(ids, mask)
    else:
        def hook(module, args, kwargs):
            seen.update(input_ids=args[0], **({"decoder_input_ids": args[1]} if len(args) > 1 else {}), **kwargs)
        model.register_forward_pre_hook(hook, with_kwargs=True)
    examples = [{"source": s, "target": r, "target_text": ""} for s, r in pairs]
    runner = RUNNERS[shape](model, TOKENIZER)
    _, labels = runner.seq2seq(collate("seq2seq", examples, TOKENIZER.pad_id))
    return seen, labels


@pytest.mark.parametrize("shape", SHAPES)
def test_old_compare_seq2seq_is_the_reference(shape):
    pairs = EQUAL_PAIRS if shape == "encoder" else PAIRS
    seen, labels = _old_compare_inputs(shape, pairs)
    expected = reference_seq2seq(shape, pairs)
    if shape == "decoder":  # the runner fed every position and scored labels shifted by one
        assert torch.equal(seen["input_ids"], expected["input_ids"])
        assert torch.equal(labels, expected["labels"][:, 1:])
    elif shape == "encoder-decoder":
        assert_same({**seen, "labels": labels}, expected)
    else:  # the masked-LM head ran on the scored positions only: labels as MaskedLM selects them
        assert_same(seen, expected, ["input_ids", "attention_mask"])
        assert torch.equal(labels[0], expected["labels"][expected["labels"] != IGNORE])


@pytest.mark.parametrize("shape", ["decoder", "encoder-decoder"])
def test_old_compare_generation_prompts_are_the_reference(shape, monkeypatch):
    import zoo.compare.adapters as adapters
    from zoo.compare.data import collate

    seen = {}

    def fake_generate(model, ids, mask, **options):
        seen.update(ids=ids, mask=mask)
        return ids.new_full((ids.shape[0], ids.shape[1] + 1), TOKENIZER.eos_id)

    monkeypatch.setattr(adapters, "generate", fake_generate)
    from zoo.models.registry import get_family

    family = get_family(FAMILY[shape])
    model = family.model_class(family.make_config(vocab_size=TOKENIZER.vocab_size, embed_dim=8, num_layers=1,
                                                  num_heads=2, max_seq_len=64))
    examples = [{"source": s, "target": r, "target_text": ""} for s, r in PAIRS]
    adapters.RUNNERS[shape](model, TOKENIZER).generate(collate("seq2seq", examples, TOKENIZER.pad_id), 3)
    ids, mask = reference_prompts(shape, [s for s, _ in PAIRS])
    assert torch.equal(seen["ids"], ids) and torch.equal(seen["mask"], mask)


@pytest.mark.parametrize("shape, instruction", [("decoder", True), ("decoder", False), ("encoder-decoder", False)])
def test_old_zoo_generate_prompts_are_the_reference(shape, instruction, monkeypatch):
    import argparse

    import zoo.commands.generate as command
    from zoo.models.registry import get_family

    seen = {}

    def fake_generate(model, ids, mask, **options):
        seen.update(ids=ids, mask=mask)
        return torch.cat((ids, ids.new_full((ids.shape[0], 1), TOKENIZER.eos_id)), 1)

    monkeypatch.setattr(command, "generate", fake_generate)
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
