"""The metric set zoo fit logs: exact match, character error rate and bits per byte on hand-checked
inputs; the instruction tasks score greedy answers (exact match, CER) and every token objective
reports bits per byte, through ``zoo fit`` itself."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.text import CharErrorRate

from zoo.cli import run
from zoo.data import InstructionDataModule
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer
from zoo.models import GPTConfig
from zoo.tasks import CausalLM, InstructionLM
from zoo.tasks.metrics import BitsPerByte, ExactMatch

TOKENIZER = CharTokenizer(list("abcdü"), num_sentinels=0)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_exact_match_and_character_error_rate():
    exact, cer = ExactMatch(), CharErrorRate()
    exact.update(["abc", "ab", ""], ["abc", "abd", "x"])
    cer.update(["abc", "ab", ""], ["abc", "abd", "x"])  # edits: 0 + 1 (substitute) + 1 (insert) over 3 + 3 + 1
    assert exact.compute().item() == pytest.approx(1 / 3)
    assert cer.compute().item() == pytest.approx(2 / 7)
    cer.update(["abcde"], ["ab"])  # 3 insertions more over 2 more characters
    assert cer.compute().item() == pytest.approx(5 / 9)
    with pytest.raises(ValueError):
        ExactMatch().update(["a"], ["a", "b"])


def test_bits_per_byte_is_nats_over_ln2_bytes():
    # Token ids 0..3 stand for 0, 1, 2 and 3 bytes; uniform logits cost ln 4 nats per scored token.
    metric = BitsPerByte([0, 1, 2, 3])
    metric.update(torch.zeros(1, 4, 4), torch.tensor([[1, 2, 3, -100]]))
    assert metric.compute().item() == pytest.approx(3 * math.log(4) / (math.log(2) * 6))  # = 1 bit per byte
    metric.update(torch.zeros(1, 1, 4), torch.tensor([[0]]))  # a special token: nats, no bytes
    assert metric.compute().item() == pytest.approx(4 * math.log(4) / (math.log(2) * 6))


def test_sentencepiece_token_bytes_add_up_to_the_text():
    from zoo.data.corpus import builtin_corpus

    docs = builtin_corpus()[:80]
    tokenizer = SentencePieceTokenizer.train(docs, vocab_size=400, num_sentinels=0)
    byte_lengths = tokenizer.token_byte_lengths()
    for text in docs[:20] + ["naïve café ☕ — 😀 unseen bytes"]:
        assert sum(byte_lengths[i] for i in tokenizer.encode(text)) == len(text.encode())


def test_causal_lm_bits_per_byte_uses_the_tokenizer_bytes():
    config = GPTConfig(vocab_size=TOKENIZER.vocab_size, embed_dim=16, num_layers=1, num_heads=2, max_seq_len=32)
    task = CausalLM(config).eval()
    task.val_metrics.update(task.text_metrics(TOKENIZER))
    ids = torch.tensor([TOKENIZER.encode("abüdcaüb")])  # ü is 2 bytes
    with torch.no_grad():
        task._shared_step({"input_ids": ids}, "val")
        logits, labels = task.logits_and_labels({"input_ids": ids})
    scored = labels != -100
    nats = torch.nn.functional.cross_entropy(logits[scored], labels[scored], reduction="sum")
    assert TOKENIZER.decode(labels[scored]) == "büdcaüb"  # every position after the first: 9 bytes
    assert task.val_metrics["bpb"].compute().item() == pytest.approx(nats.item() / (math.log(2) * 9), rel=1e-5)


def test_instruction_tasks_score_their_greedy_answers_against_the_references():
    dm = InstructionDataModule(builtin="reverse", synthetic={"train_size": 16, "val_size": 4, "test_size": 4},
                               tokenizer="char", shape="decoder")
    dm.setup("fit")
    task = InstructionLM(GPTConfig(vocab_size=dm.vocab_size, embed_dim=16, num_layers=1, num_heads=2,
                                   max_seq_len=64)).eval()
    task.val_metrics.update(task.text_metrics(dm.tokenizer))
    batch = next(iter(dm.val_dataloader()))
    references = [r for _, r in dm.raw_examples("validation")]
    answers = [dm.tokenizer.encode(r) for r in references[:3]] + [dm.tokenizer.encode(references[3][:-1])]
    task._layout.answer = lambda model, batch: answers  # three right, one a character short
    with torch.no_grad():
        task._shared_step(batch, "val")
    assert task.val_metrics["exact_match"].compute().item() == pytest.approx(3 / 4)
    chars = sum(map(len, references))
    assert task.val_metrics["cer"].compute().item() == pytest.approx(1 / chars)


@pytest.mark.parametrize("task, family", [("InstructionLM", "gpt"), ("InstructionSeq2Seq", "t5"),
                                          ("InstructionMLM", "bert")])
def test_zoo_fit_on_a_seq2seq_task_logs_exact_match(tmp_path, task, family):
    cli = run(["fit", "--model", f"zoo.tasks.{task}", "--model.init_args.config.embed_dim", "16",
               "--model.init_args.config.num_layers", "1", "--model.init_args.config.num_heads", "2",
               "--model.init_args.config.max_seq_len", "32", "--data", "zoo.data.InstructionDataModule",
               "--data.init_args.builtin", "reverse", "--data.init_args.tokenizer", "char",
               "--data.init_args.synthetic", '{"train_size": 32, "val_size": 8, "test_size": 8, "max_len": 4}',
               "--data.init_args.max_seq_len", "32", "--data.init_args.batch_size", "8",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
               "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
               "--trainer.logger.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
               "--checkpoint.dirpath", str(tmp_path), "--trainer.default_root_dir", str(tmp_path)])
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["val_exact_match"]) <= 1 and float(metrics["val_cer"]) >= 0
    assert float(metrics["val_bpb"]) > 0 and "val_perplexity" in metrics
