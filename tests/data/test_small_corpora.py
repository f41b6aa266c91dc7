"""Small and odd corpora: any corpus of two or more distinct documents splits and trains (a corpus
whose documents all hash above the validation cut is common below ~60 documents), a corpus that
cannot be split says how to give a validation file, a one-line (text8-style) corpus trains, and
the README's "your data" command works on a 30-line file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from zoo.data import TextDataModule
from zoo.data.splits import unit_hash

from .helpers import assert_one_line

REPO = Path(__file__).resolve().parents[2]


def _corpus(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _random_lines(rng: random.Random, count: int) -> list[str]:
    words = "the a of zoo model token block shard split train data line small odd corpus".split()
    lines: list[str] = []
    while len(lines) < count:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        if line not in lines:
            lines.append(line)
    return lines


def test_fifty_random_small_corpora_all_split_and_train(tmp_path: Path, cache_dir: Path) -> None:
    rng = random.Random(0)
    above_the_cut = 0
    for i in range(50):
        lines = _random_lines(rng, rng.randint(2, 20))
        all_above = all(unit_hash(line, 1234) >= 0.05 for line in lines)  # val_fraction 0.05, seed 1234
        above_the_cut += all_above
        path = _corpus(tmp_path / f"c{i}.txt", lines)
        for _run in range(2 if all_above else 1):  # a rerun reuses what the first run built (it did not, here)
            dm = TextDataModule(objective="clm", data_files=os.fspath(path), tokenizer="char", max_seq_len=16,
                                batch_size=2, cache_dir=os.fspath(cache_dir))
            dm.prepare_data()
            dm.setup("fit")
            train, val = dm.documents("train"), dm.documents("validation")
            assert train and val and sorted(train + val) == sorted(lines), i
            assert next(iter(dm.train_dataloader()))["input_ids"].shape[1] <= 16
            assert len(list(dm.val_dataloader())) >= 1
    assert above_the_cut >= 20, "the probe must include corpora whose documents all hash above the cut"


def test_the_issue_eight_line_file_trains_and_reruns(tmp_path: Path, cache_dir: Path) -> None:
    lines = [f"line {i}: a small file somebody wants to train on" for i in range(8)]
    path = _corpus(tmp_path / "eight.txt", lines)
    for _run in range(2):
        dm = TextDataModule(objective="clm", data_files=os.fspath(path), tokenizer="char", max_seq_len=64,
                            cache_dir=os.fspath(cache_dir))
        dm.setup("fit")
        assert len(dm._tokenized("train")) >= 1 and len(dm._tokenized("validation")) == 1
    shards = cache_dir / "shards"
    assert len(list(shards.glob("*/meta.json"))) == 1 and not list(shards.glob(".*.tmp"))
    # a validation split shorter than one block is read as one shorter block
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and batch["input_ids"].shape[1] < 64


@pytest.mark.parametrize("lines", [["the only document"], ["the same text", "the same text"]])
def test_a_corpus_that_cannot_be_split_says_how_to_give_a_validation_file(
    tmp_path: Path, cache_dir: Path, lines: list[str]
) -> None:
    path = _corpus(tmp_path / "one.txt", lines)
    dm = TextDataModule(objective="clm", data_files=os.fspath(path), tokenizer="char", max_seq_len=8,
                        cache_dir=os.fspath(cache_dir))
    with pytest.raises(ValueError) as info:
        dm.prepare_data()
    message = assert_one_line(info.value)
    assert "cannot split" in message and f"--data.init_args.data_files '{{train: {path}, validation: " in message


def test_a_text8_style_single_line_trains_sentencepiece(tmp_path: Path, cache_dir: Path) -> None:
    """One 1 MB line — 60 times SentencePiece's sentence limit — was skipped whole, leaving nothing
    to train on (an INTERNAL error); cut into pieces at spaces, it trains."""
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 8))) for _ in range(2000)]
    train = _corpus(tmp_path / "text8.txt", [" ".join(rng.choice(words) for _ in range(170_000))])
    val = _corpus(tmp_path / "val.txt", [" ".join(rng.choice(words) for _ in range(2000))])
    assert train.stat().st_size > 60 * 16384 and train.read_text().count("\n") == 1
    dm = TextDataModule(objective="clm", data_files={"train": os.fspath(train), "validation": os.fspath(val)},
                        vocab_size=1000, max_seq_len=64, cache_dir=os.fspath(cache_dir))
    assert dm.vocab_size == 1000
    dm.setup("fit")
    blocks = dm._tokenized("train")
    assert len(blocks) > 1000
    text = dm.tokenizer.decode(blocks[500]["input_ids"])
    assert text in train.read_text()
    # what was encoded in pieces is the line, whole: the pieces' tokens decode back to it
    ids = torch.tensor([token for i in range(len(blocks)) for token in blocks[i]["input_ids"]])
    assert dm.tokenizer.decode(ids).startswith(train.read_text()[: len(dm.tokenizer.decode(ids)) - 100])


def test_the_readme_your_data_command_trains_on_a_30_line_file(tmp_path: Path, monkeypatch) -> None:
    """`zoo fit --config configs/gpt_clm.yaml --data.init_args.data_files my_corpus.txt` asks for a
    4000-piece SentencePiece vocabulary, more than 30 lines support: it trains the most they do."""
    from zoo.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", os.fspath(tmp_path / "cache"))
    lines = [f"Line {i} of my own corpus, which is small: {' '.join(['word'] * (i % 9))} and done." for i in range(30)]
    _corpus(tmp_path / "my_corpus.txt", lines)
    with pytest.warns(UserWarning, match=r"vocab_size=4000 is more than 'my_corpus.txt' supports; trained the most"):
        cli = run(["fit", "--config", os.fspath(REPO / "configs" / "gpt_clm.yaml"),
                   "--data.init_args.data_files", "my_corpus.txt",
                   "--trainer.max_steps", "2", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--checkpoint.dirpath", os.fspath(tmp_path / "checkpoints")])
    assert cli.trainer.global_step == 2
    assert cli.datamodule.vocab_size < 4000 and cli.model.model.config.vocab_size == cli.datamodule.vocab_size
