"""train(): the curves it returns, and a diverging run that stops itself."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from zoo.analysis.training import History, train
from zoo.data import TextDataModule
from zoo.models import GPTConfig
from zoo.tasks import CausalLM, load_task


@pytest.fixture(scope="module")
def data():
    data = TextDataModule(objective="clm", tokenizer="char", max_seq_len=32, batch_size=8, max_documents=40)
    data.prepare_data()
    return data


def tiny_task(data, **task_kwargs):
    L.seed_everything(0, verbose=False)
    config = GPTConfig(vocab_size=data.vocab_size, max_seq_len=32, embed_dim=32, num_layers=1, num_heads=2,
                       dropout=0.0)
    return CausalLM(config, **task_kwargs)


def test_train_returns_curves_and_saves_a_checkpoint(data, tmp_path):
    path = tmp_path / "run.ckpt"
    task = tiny_task(data, lr=3e-3, warmup_steps=2)
    history = train(task, data, max_steps=12, val_every=5, val_batches=2, save_checkpoint=str(path))
    assert history.steps == list(range(1, 13))
    assert len(history.train_loss) == len(history.grad_norm) == len(history.step_time) == 12
    assert history.val_steps == [5, 10, 12]  # and once more after the last step
    assert all(math.isfinite(v) for v in history.val_loss + history.grad_norm)
    assert history.train_loss[-1] < history.train_loss[0]
    assert not history.diverged and history.final_val_loss == history.val_loss[-1]
    assert history.median_step_time > 0 and history.wall_time > sum(history.step_time) * 0.5
    assert [m["val_loss"] for m in history.val_metrics] == history.val_loss
    assert "val_perplexity" in history.val_metrics[-1]
    loaded = load_task(str(path))
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), task.model.state_dict().values(),
                                                 strict=True))


def test_a_diverging_run_stops_and_says_so(data):
    history = train(tiny_task(data, lr=1e6, warmup_steps=0, scheduler="constant"), data, max_steps=40,
                    val_every=40, val_batches=1)
    assert history.diverged
    assert len(history.train_loss) < 40 and not math.isfinite(history.train_loss[-1])


def test_smoothed_loss():
    history = History(train_loss=[4.0, 2.0, 0.0, 2.0])
    assert history.smoothed_train_loss(2) == [4.0, 3.0, 1.0, 1.0]
