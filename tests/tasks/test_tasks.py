"""LightningModule behaviour that does not need the CLI: optimizer groups, schedule, checkpoints."""

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.models import BertConfig, GPTConfig, T5Config
from zoo.tasks import CausalLM, MaskedLM, Seq2SeqLM, load_task
from zoo.tasks.base import warmup_cosine

TINY = dict(vocab_size=40, embed_dim=32, num_layers=1, num_heads=4, max_seq_len=32, dropout=0.0)


def random_batches(objective: str, n: int = 4, b: int = 4, t: int = 12):
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(n):
        x = torch.randint(4, 40, (b, t), generator=g)
        if objective == "clm":
            batches.append({"input_ids": x, "labels": x})
        elif objective == "mlm":
            labels = torch.full_like(x, -100)
            labels[:, ::4] = x[:, ::4]
            masked = x.clone()
            masked[:, ::4] = 1
            mask = torch.ones_like(x, dtype=torch.bool)
            batches.append({"input_ids": masked, "attention_mask": mask, "labels": labels})
        else:
            start = torch.zeros(b, 1, dtype=torch.long)
            batches.append({"input_ids": x, "attention_mask": torch.ones_like(x, dtype=torch.bool),
                            "labels": x, "decoder_input_ids": torch.cat([start, x[:, :-1]], 1)})
    return DataLoader(batches, batch_size=None)


TASKS = [(MaskedLM, BertConfig, "mlm"), (CausalLM, GPTConfig, "clm"), (Seq2SeqLM, T5Config, "span")]


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("task_cls,config_cls,_", TASKS)
def test_no_weight_decay_on_norms_biases_embeddings(task_cls, config_cls, _):
    task = task_cls(config_cls(**TINY))
    decay, no_decay = task.parameter_groups()
    names = {id(p): n for n, p in task.model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert not decayed & undecayed
    assert decayed | undecayed == set(names.values())
    assert decay["weight_decay"] > 0 and no_decay["weight_decay"] == 0.0
    assert all(("norm" not in n and not n.endswith("bias") and "embed" not in n) for n in decayed)
    assert any("embed_tokens" in n for n in undecayed)
    assert any("q_proj.weight" in n for n in decayed)


@pytest.mark.parametrize("task_cls,config_cls,objective", TASKS)
def test_fit_saves_plain_checkpoint_that_reloads(tmp_path, task_cls, config_cls, objective):
    """A model built from Python (not the CLI) trains, checkpoints, and loads with weights_only=True."""
    task = task_cls(config_cls(**TINY), warmup_steps=1)
    trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1)
    trainer.fit(task, random_batches(objective), random_batches(objective, n=1))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["config"]["embed_dim"] == 32
    for reloaded in (load_task(str(path)), task_cls.load_from_checkpoint(path)):
        assert type(reloaded) is task_cls
        reloaded_state = reloaded.state_dict()
        assert reloaded_state.keys() == task.state_dict().keys()
        for name, value in task.state_dict().items():
            assert torch.equal(value, reloaded_state[name]), name


def test_lr_schedule_follows_warmup_then_cosine(tmp_path):
    task = CausalLM(GPTConfig(**TINY), lr=1e-2, warmup_steps=2, max_steps=6, min_lr_ratio=0.0)
    trainer = L.Trainer(max_steps=6, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, limit_val_batches=0)
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer.callbacks.append(Record())
    trainer.fit(task, random_batches("clm", n=6))
    expected = [1e-2 * warmup_cosine(step, 2, 6, 0.0) for step in range(6)]
    assert lrs == pytest.approx(expected)


def test_checkpoint_with_other_vocab_is_refused(tmp_path):
    task = CausalLM(GPTConfig(**TINY))
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(task, random_batches("clm", n=1))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    other = CausalLM(GPTConfig(**{**TINY, "vocab_size": 41}))
    with pytest.raises(ValueError, match=r"vocab_size: checkpoint 40 vs now 41"):
        other.on_load_checkpoint(torch.load(path, weights_only=True))


def test_task_rejects_bad_optimizer_settings():
    with pytest.raises(ValueError, match="lr=-1"):
        CausalLM(GPTConfig(**TINY), lr=-1)


def test_wrong_config_family_is_refused():
    with pytest.raises(TypeError, match="GPTConfig"):
        CausalLM(T5Config(**TINY))
