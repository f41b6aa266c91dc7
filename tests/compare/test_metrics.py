"""Metrics on hand-checked inputs: exact match, character error rate, bits per byte, macro-F1 —
through the suite modules' own metric collections."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.compare.metrics import BitsPerByte, ExactMatch
from zoo.compare.modules import SuiteClassification, SuiteLM, SuiteSeq2Seq
from zoo.data.tokenizers import CharTokenizer
from zoo.models.registry import FAMILIES

TOKENIZER = CharTokenizer(list("abcdü"), num_sentinels=0)


def module(cls, **kwargs):
    config = FAMILIES["gpt"].make_config(vocab_size=TOKENIZER.vocab_size, embed_dim=16, num_layers=1, num_heads=2,
                                         max_seq_len=32, dropout=0.0)
    return cls("gpt", config.to_dict(), TOKENIZER, **kwargs)


def test_exact_match_and_character_error_rate():
    metrics = module(SuiteSeq2Seq).make_metrics()
    metrics["exact_match"].update(["abc", "ab", ""], ["abc", "abd", "x"])
    # edits: 0 + 1 (substitute) + 1 (insert) over 3 + 3 + 1 reference characters
    metrics["cer"].update(["abc", "ab", ""], ["abc", "abd", "x"])
    assert metrics["exact_match"].compute().item() == pytest.approx(1 / 3)
    assert metrics["cer"].compute().item() == pytest.approx(2 / 7)
    metrics["cer"].update(["abcde"], ["ab"])  # 3 insertions more over 2 more characters
    assert metrics["cer"].compute().item() == pytest.approx(5 / 9)
    with pytest.raises(ValueError):
        ExactMatch().update(["a"], ["a", "b"])


def test_bits_per_byte_is_nats_over_ln2_bytes():
    # Token ids 0..3 stand for 0, 1, 2 and 3 bytes; uniform logits cost ln 4 nats per scored token.
    metric = BitsPerByte([0, 1, 2, 3])
    logits = torch.zeros(1, 4, 4)
    metric.update(logits, torch.tensor([[1, 2, 3, -100]]))
    assert metric.compute().item() == pytest.approx(3 * math.log(4) / (math.log(2) * 6))  # = 1 bit per byte
    metric.update(torch.zeros(1, 1, 4), torch.tensor([[0]]))  # a special token: nats, no bytes
    assert metric.compute().item() == pytest.approx(4 * math.log(4) / (math.log(2) * 6))


def test_language_model_bits_per_byte_uses_the_tokenizer_bytes():
    lm = module(SuiteLM)
    ids = torch.tensor([TOKENIZER.encode("abüdcaüb")])  # ü is 2 bytes
    logits, labels = lm.logits_and_labels({"input_ids": ids}, "val")
    scored = labels != -100
    assert scored.sum() == 4  # the second half of the block only
    nats = torch.nn.functional.cross_entropy(logits[scored], labels[scored], reduction="sum")
    lm.update_metrics(lm.val_metrics, {"input_ids": ids}, logits, labels)
    text = TOKENIZER.decode(labels[scored])
    assert text == "caüb"
    assert lm.val_metrics["bpb"].compute().item() == pytest.approx(nats.item() / (math.log(2) * 5), rel=1e-5)
    assert lm.val_metrics["perplexity"].compute().item() == pytest.approx(math.exp(nats.item() / 4), rel=1e-5)


def test_accuracy_and_macro_f1():
    metrics = module(SuiteClassification, num_classes=3).make_metrics()
    preds = torch.tensor([0, 0, 1, 1, 2])
    target = torch.tensor([0, 1, 1, 1, 2])
    logits = torch.nn.functional.one_hot(preds, 3).float()
    for metric in metrics.values():
        metric.update(logits, target)
    # F1 per class: 0 → P ½ R 1 = ⅔; 1 → P 1 R ⅔ = ⅘; 2 → 1
    assert metrics["accuracy"].compute().item() == pytest.approx(4 / 5)
    assert metrics["macro_f1"].compute().item() == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)


def test_seq2seq_module_scores_greedy_outputs_against_the_reference_text():
    seq2seq = module(SuiteSeq2Seq)
    batch = {"source_ids": torch.tensor([TOKENIZER.encode("ab"), TOKENIZER.encode("cd")]),
             "source_mask": torch.ones(2, 2, dtype=torch.bool),
             "target_ids": torch.tensor([TOKENIZER.encode("ba"), TOKENIZER.encode("dc")]),
             "target_mask": torch.ones(2, 2, dtype=torch.bool), "target_text": ["ba", "dc"]}
    seq2seq.runner.generate = lambda batch, max_new_tokens: [TOKENIZER.encode("ba"), TOKENIZER.encode("d")]
    seq2seq.update_metrics(seq2seq.val_metrics, batch, None, None)
    assert seq2seq.val_metrics["exact_match"].compute().item() == pytest.approx(0.5)
    assert seq2seq.val_metrics["cer"].compute().item() == pytest.approx(1 / 4)

