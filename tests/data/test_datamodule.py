"""TextDataModule end to end on the built-in corpus and on user files, plus its failure modes."""

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from zoo.data import TextDataModule
from zoo.data.objectives import IGNORE_INDEX
from zoo.data.tokenizers import SentencePieceTokenizer

from .helpers import SMALL_DOCS, SMALL_VOCAB, assert_one_line

# Small and fast, but real: the first SMALL_DOCS built-in documents. Every test using these shares
# one tokenizer through the session cache.
FAST = {"max_documents": SMALL_DOCS, "vocab_size": SMALL_VOCAB, "max_seq_len": 64, "batch_size": 4}

EXPECTED_KEYS = {
    "clm": {"input_ids", "labels"},
    "mlm": {"input_ids", "attention_mask", "labels"},
    "span": {"input_ids", "attention_mask", "labels", "decoder_input_ids", "decoder_attention_mask"},
}


def _first_batch(loader) -> dict[str, torch.Tensor]:
    return next(iter(loader))


def test_model_facing_properties_work_right_after_init(session_cache: Path) -> None:
    dm = TextDataModule(objective="clm", **FAST)
    assert dm.vocab_size == SMALL_VOCAB
    assert (dm.pad_id, dm.bos_id, dm.eos_id, dm.mask_id) == (0, 2, 3, 4)
    assert isinstance(dm.tokenizer, SentencePieceTokenizer)
    assert len(dm.tokenizer_fingerprint) == 16
    assert dm.tokenizer_file.is_file() and session_cache in dm.tokenizer_file.parents
    assert dm.hparams["objective"] == "clm" and dm.hparams["tokenizer"] == "sentencepiece"


@pytest.mark.parametrize("objective", ["clm", "mlm", "span"])
def test_batches_have_documented_keys_shapes_and_dtypes(objective: str) -> None:
    dm = TextDataModule(objective=objective, **FAST)
    dm.prepare_data()
    dm.setup("fit")
    for batch in (_first_batch(dm.train_dataloader()), _first_batch(dm.val_dataloader())):
        assert set(batch) == EXPECTED_KEYS[objective]
        b, s = batch["input_ids"].shape
        assert b == 4 and s <= 64
        for key, value in batch.items():
            expected = torch.bool if key.endswith("attention_mask") else torch.long
            assert value.dtype == expected, key
        assert int(batch["input_ids"].max()) < dm.vocab_size
        if objective == "clm":
            assert s == 64 and torch.equal(batch["labels"], batch["input_ids"])
        if objective == "mlm":
            mask = batch["attention_mask"]
            assert batch["labels"].shape == mask.shape == (b, s)
            assert (batch["input_ids"][:, 0] == dm.tokenizer.cls_id).all()
            assert (batch["labels"][~mask] == IGNORE_INDEX).all()
            assert (batch["labels"] != IGNORE_INDEX).any()
        if objective == "span":
            t = batch["labels"].shape[1]
            assert batch["decoder_input_ids"].shape == batch["decoder_attention_mask"].shape == (b, t)
            assert (batch["decoder_input_ids"][:, 0] == dm.pad_id).all()
            assert (batch["labels"][~batch["decoder_attention_mask"]] == IGNORE_INDEX).all()
            assert (batch["input_ids"][~batch["attention_mask"]] == dm.pad_id).all()


def test_clm_blocks_are_real_text(corpus: list[str]) -> None:
    dm = TextDataModule(objective="clm", **FAST)
    dm.setup("fit")
    block = dm._tokenized("train")[0]["input_ids"]
    first_doc = dm.documents("train")[0]
    assert first_doc.startswith(dm.tokenizer.decode(block[:20]))
    assert first_doc in corpus


def test_shuffling_is_seeded_and_validation_masks_are_fixed() -> None:
    first, second = TextDataModule(objective="mlm", **FAST), TextDataModule(objective="mlm", **FAST)
    for dm in (first, second):
        dm.setup("fit")
    assert torch.equal(
        _first_batch(first.train_dataloader())["input_ids"], _first_batch(second.train_dataloader())["input_ids"]
    )
    loader = first.val_dataloader()
    assert torch.equal(_first_batch(loader)["labels"], _first_batch(loader)["labels"]), "val masks repeat per epoch"
    train = first.train_dataloader()
    epoch_one, epoch_two = [b["labels"] for b in train], [b["labels"] for b in train]
    assert any(not torch.equal(a, b) for a, b in zip(epoch_one, epoch_two, strict=True)), "fresh masks per epoch"


def test_workers_give_the_same_validation_batches() -> None:
    serial = TextDataModule(objective="span", **FAST)
    parallel = TextDataModule(objective="span", **{**FAST, "num_workers": 2})
    for dm in (serial, parallel):
        dm.setup("validate")
    for a, b in zip(serial.val_dataloader(), parallel.val_dataloader(), strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_second_run_reuses_tokenizer_and_tokenized_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {**FAST, "cache_dir": os.fspath(cache_dir)}
    first = TextDataModule(objective="span", **settings)
    first.prepare_data()
    shard = first._tokenized("train").path
    assert cache_dir in shard.parents
    stamps = (shard.stat().st_mtime_ns, first.tokenizer_file.stat().st_mtime_ns)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been used")

    monkeypatch.setattr(SentencePieceTokenizer, "train", no_training)
    second = TextDataModule(objective="span", **settings)
    second.prepare_data()
    second.setup("fit")
    assert second.tokenizer_fingerprint == first.tokenizer_fingerprint
    assert second._tokenized("train").path == shard
    assert (shard.stat().st_mtime_ns, second.tokenizer_file.stat().st_mtime_ns) == stamps
    # Blocks are cut when read: another length or objective reads the same shard, differently.
    other = TextDataModule(objective="clm", **{**settings, "max_seq_len": 32})
    assert other._tokenized("train").path == shard
    assert len(other._tokenized("train")) > len(first._tokenized("train"))
    # Another split of the corpus makes another cache entry, next to the first.
    monkeypatch.undo()
    resplit = TextDataModule(objective="span", **{**settings, "seed": 7})
    moved = resplit._tokenized("train").path
    assert moved != shard and moved.parent.parent == shard.parent.parent


def test_tokenizer_path_reuses_a_tokenizer(session_cache: Path) -> None:
    trained = TextDataModule(objective="clm", **FAST)
    reused = TextDataModule(
        objective="mlm", tokenizer_path=os.fspath(trained.tokenizer_file), vocab_size=123, max_documents=50
    )
    assert reused.tokenizer_fingerprint == trained.tokenizer_fingerprint
    assert reused.vocab_size == SMALL_VOCAB  # the file decides, not the vocab_size argument


# ---------------------------------------------------------------------------------------------
# User files


@pytest.fixture
def corpus_lines(corpus: list[str]) -> list[str]:
    return [line for doc in corpus[400:700] for line in doc.splitlines() if len(line.strip()) > 20][:600]


def test_text_file_with_char_tokenizer(tmp_path: Path, corpus_lines: list[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    dm = TextDataModule(objective="clm", data_files=os.fspath(path), tokenizer="char", max_seq_len=32, batch_size=8)
    assert dm.tokenizer_file.suffix == ".json"
    assert len(dm.documents("train")) + len(dm.documents("validation")) == len(corpus_lines)
    dm.setup("fit")
    batch = _first_batch(dm.train_dataloader())
    assert batch["input_ids"].shape == (8, 32)
    assert dm.tokenizer.decode(batch["input_ids"][0]).replace("\n", "") != ""


def test_jsonl_train_and_validation_with_sentencepiece(tmp_path: Path, corpus_lines: list[str]) -> None:
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text("".join(json.dumps({"body": line}) + "\n" for line in corpus_lines[:550]))
    val.write_text("".join(json.dumps({"body": line}) + "\n" for line in corpus_lines[550:]))
    dm = TextDataModule(
        objective="mlm",
        data_files={"train": os.fspath(train), "validation": os.fspath(val)},
        text_field="body",
        vocab_size=600,
        max_seq_len=48,
        batch_size=4,
    )
    assert dm.documents("validation") == corpus_lines[550:]
    assert dm.vocab_size == 600
    dm.setup("validate")
    assert _first_batch(dm.val_dataloader())["input_ids"].shape[0] == 4


# ---------------------------------------------------------------------------------------------
# Errors, before any training


def _write_bad_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("na\u00efve caf\u00e9\n".encode("latin-1"))
    (tmp_path / "records.jsonl").write_text('{"content": "some text"}\n')
    return {
        "missing": tmp_path / "missing.txt",
        "empty": tmp_path / "empty.txt",
        "latin1": tmp_path / "latin1.txt",
        "no_field": tmp_path / "records.jsonl",
    }


@pytest.mark.parametrize("case", ["missing", "empty", "latin1", "no_field"])
def test_bad_data_files_fail_in_init(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SentencePieceTokenizer, "train", None)  # nothing may get as far as training
    path = _write_bad_files(tmp_path)[case]
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        TextDataModule(data_files=os.fspath(path))
    assert path.name in assert_one_line(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"objective": "seq2seq"}, "objective"),
        ({"tokenizer": "wordpiece"}, "tokenizer"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"mlm_probability": 1.5}, "mlm_probability"),
        ({"noise_density": 0.0}, "noise_density"),
        ({"mean_noise_span_length": 0.5}, "mean_noise_span_length"),
        ({"max_seq_len": 1}, "max_seq_len"),
        ({"batch_size": 0}, "batch_size"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"max_documents": 1}, "max_documents"),
        ({"data_format": "xml"}, "data_format"),
        ({"objective": "span", "max_seq_len": 4096}, "max_seq_len"),
        ({"data_files": "a.txt", "dataset_name": "wikitext"}, "dataset_name"),
        ({"tokenizer_path": "no/such/tokenizer.model"}, "tokenizer_path"),
    ],
)
def test_bad_arguments_fail_in_init_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        TextDataModule(**kwargs)
    assert field in assert_one_line(info.value)


def test_a_vocab_size_too_large_for_the_corpus_shrinks_to_what_it_supports_and_says_so() -> None:
    dm = TextDataModule(max_documents=20, vocab_size=50_000)
    with pytest.warns(UserWarning, match=r"vocab_size=50000 is more than the built-in corpus supports") as caught:
        size = dm.vocab_size
    assert 500 < size < 50_000
    assert f"--data.init_args.vocab_size {size} " in str(caught[0].message)
    # the number it names is one SentencePiece accepts: asked for exactly, it trains exactly that
    assert TextDataModule(max_documents=20, vocab_size=size).vocab_size == size


def test_a_vocab_size_too_small_names_the_least_that_works() -> None:
    dm = TextDataModule(max_documents=20, vocab_size=50)
    with pytest.raises(ValueError, match="vocab_size=50 is too small") as info:
        _ = dm.vocab_size
    least = int(assert_one_line(info.value).split("--data.vocab_size ")[1].split()[0])
    assert TextDataModule(max_documents=20, vocab_size=least).vocab_size == least


def test_predict_reads_the_validation_split_in_order() -> None:
    dm = TextDataModule(**FAST)
    predict, val = dm.predict_dataloader(), dm.val_dataloader()
    for a, b in zip(predict, val, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_state_dict_round_trip_and_mismatch() -> None:
    dm = TextDataModule(**FAST)
    state = dm.state_dict()
    assert state["tokenizer_fingerprint"] == dm.tokenizer_fingerprint and state["vocab_size"] == SMALL_VOCAB
    assert Path(state["tokenizer_file"]) == dm.tokenizer_file
    dm.load_state_dict(state)  # same tokenizer: accepted
    for change in ({"tokenizer_fingerprint": "0123456789abcdef"}, {"vocab_size": SMALL_VOCAB + 1}):
        with pytest.raises(ValueError, match="--data.tokenizer_path") as info:
            dm.load_state_dict({**state, **change})
        message = assert_one_line(info.value)
        assert dm.tokenizer_fingerprint in message and str(state["tokenizer_file"]) in message


class _TinyLM(L.LightningModule):
    """Just enough model to run the data through a Trainer (embedding big enough for both vocabs)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(SMALL_VOCAB, 8)
        self.head = nn.Linear(8, SMALL_VOCAB)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.head(self.embed(batch["input_ids"]))
        return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path: Path) -> L.Trainer:
    return L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_checkpoint_carries_the_tokenizer_and_refuses_another(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    trainer.fit(_TinyLM(), datamodule=TextDataModule(objective="clm", **FAST))
    path = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["TextDataModule"]["vocab_size"] == SMALL_VOCAB

    other = TextDataModule(objective="clm", tokenizer="char", max_documents=SMALL_DOCS, max_seq_len=64, batch_size=4)
    with pytest.raises(ValueError, match="fingerprint"):
        _trainer(tmp_path).fit(_TinyLM(), datamodule=other, ckpt_path=path)
