"""`DownstreamEval` during training: scores logged every N steps beside the loss, and training
itself untouched (the same losses as a run without it)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from tests.eval.helpers import tokenizer
from zoo.models.registry import get_family

pytest.importorskip("lm_eval")

from zoo.eval.callback import DownstreamEval  # noqa: E402


class Data(L.LightningDataModule):
    """Random token blocks, with the tokenizer a zoo data module exposes."""

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer = tokenizer()

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        blocks = [{"input_ids": torch.randint(107, self.tokenizer.vocab_size, (4, 32), generator=g)}
                  for _ in range(6)]
        return torch.utils.data.DataLoader(blocks, batch_size=None)


class Losses(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        self.values.append(float(outputs["loss"]))


def fit(tmp_path, family: str, *callbacks) -> tuple[Losses, L.Trainer]:
    tok = tokenizer()
    fam = get_family(family)
    torch.manual_seed(0)
    config = fam.make_config(vocab_size=tok.vocab_size, embed_dim=32, num_layers=1, num_heads=2, max_seq_len=128,
                             dropout=0.1, pad_token_id=tok.pad_id, eos_token_id=tok.eos_id, bos_token_id=tok.bos_id)
    task = fam.task_class(config, warmup_steps=1)
    losses = Losses()
    trainer = L.Trainer(max_steps=4, logger=CSVLogger(tmp_path), enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                        callbacks=[losses, *callbacks])
    trainer.fit(task, datamodule=Data())
    return losses, trainer


def test_scores_are_logged_every_n_steps_and_training_is_unchanged(tmp_path):
    plain, _ = fit(tmp_path / "plain", "gpt")
    evaluated, trainer = fit(tmp_path / "eval", "gpt", DownstreamEval(tasks=["zoo_cloze", "zoo_reverse"],
                                                                       every_n_steps=2, limit=4, batch_size=4))
    assert evaluated.values == plain.values  # same random draws (dropout), same mode: same training
    lines = (tmp_path / "eval" / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    logged = [(r["step"], r["downstream/zoo_cloze/acc"]) for r in rows if r.get("downstream/zoo_cloze/acc")]
    assert [step for step, _ in logged] == ["2", "4"]  # every 2 steps; the end is step 4, already done
    assert all(0.0 <= float(value) <= 1.0 for _, value in logged)
    assert "downstream/zoo_reverse/exact_match" in header
    assert trainer.lightning_module.model.training


def test_a_task_the_family_cannot_answer_is_refused_before_the_first_step(tmp_path):
    with pytest.raises(ValueError, match="zoo_copy is a generation task .* masked LM"):
        fit(tmp_path, "bert", DownstreamEval(tasks=["zoo_copy"], every_n_steps=2))
    with pytest.raises(ValueError, match="every_n_steps=0 must be >= 1"):
        DownstreamEval(every_n_steps=0)
