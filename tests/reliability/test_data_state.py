"""The training loader resumes by itself: its state_dict (what Lightning puts in every checkpoint)
brings a fresh loader to the same next batch, masks included, mid-epoch and at an epoch's end; and
the masks do not depend on the number of workers."""

from __future__ import annotations

import itertools

import pytest
import torch

from zoo.data import TextDataModule


def _datamodule(corpus, objective: str, **kwargs) -> TextDataModule:
    dm = TextDataModule(objective=objective, data_files=str(corpus), tokenizer="char", max_seq_len=32, batch_size=4,
                        val_fraction=0.1, **kwargs)
    dm.setup("fit")
    return dm


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("objective", ["mlm", "span"])
def test_loader_state_resumes_mid_epoch_and_at_the_epoch_end(workdir, corpus, objective):
    loader = _datamodule(corpus, objective).train_dataloader()
    per_epoch = len(loader)
    epochs = [list(loader) for _ in range(2)]  # iterated by hand, each pass is a new epoch
    assert not all(_same(a, b) for a, b in zip(*epochs, strict=True)), "fresh order and masks each epoch"
    uninterrupted = list(itertools.chain(*epochs))
    for taken in (2, per_epoch):
        loader = _datamodule(corpus, objective).train_dataloader()
        iterator = iter(loader)
        for _ in range(taken):
            next(iterator)
        state = loader.state_dict()
        resumed = _datamodule(corpus, objective).train_dataloader()
        resumed.load_state_dict(state)
        rest = list(resumed) if taken < per_epoch else []
        rest += list(resumed)  # the next epoch
        expected = uninterrupted[taken : per_epoch * 2] if taken < per_epoch else uninterrupted[per_epoch:]
        assert len(rest) == len(expected) and all(_same(a, b) for a, b in zip(rest, expected, strict=True)), taken


def test_masks_do_not_depend_on_the_number_of_workers(workdir, corpus):
    serial = list(_datamodule(corpus, "mlm").train_dataloader())
    parallel = list(_datamodule(corpus, "mlm", num_workers=2).train_dataloader())
    assert len(serial) == len(parallel) and all(_same(a, b) for a, b in zip(serial, parallel, strict=True))
