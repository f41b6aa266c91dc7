"""The mixture-of-experts load-balancing loss reaches training: the task adds it to the loss it
returns for backward and logs it, while ``<stage>_loss`` stays the cross-entropy."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zoo.models import GPTConfig
from zoo.tasks import CausalLM

from .helpers import TINY, random_ids


def _batches(n: int = 3):
    return DataLoader([{"input_ids": (ids := random_ids(4, 12)), "labels": ids} for _ in range(n)], batch_size=None)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_loss_is_cross_entropy_plus_the_weighted_aux_loss():
    task = CausalLM(GPTConfig(**TINY, num_experts=4, moe_aux_loss_weight=0.3))
    batch = next(iter(_batches()))
    loss = task.training_step(batch, 0)
    logits, labels = task.logits_and_labels(batch)  # same weights, same batch: same routing
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    aux = task.model.aux_loss()
    assert aux is not None and aux > 0
    torch.testing.assert_close(loss, ce + aux)
    dense = CausalLM(GPTConfig(**TINY))
    assert dense.model.aux_loss() is None


def test_fit_logs_the_aux_loss(tmp_path):
    task = CausalLM(GPTConfig(**TINY, num_experts=4), lr=1e-2, warmup_steps=0)
    trainer = L.Trainer(max_steps=3, logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        val_check_interval=3, log_every_n_steps=1, accelerator="cpu")
    trainer.fit(task, _batches(), _batches(1))
    logged = trainer.logged_metrics
    assert {"train_aux_loss", "val_aux_loss", "train_loss", "val_loss"} <= set(logged)
    assert torch.isfinite(logged["train_aux_loss"]) and logged["val_aux_loss"] > 0
