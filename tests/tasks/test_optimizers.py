"""Optimizers by name: AdamW (the default) unchanged bit for bit; Muon for each hidden projection and
AdamW for the rest as one optimizer, each group's rate and decay its own, its state exact across a
save and load; μP's per-group rates; the one-line refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zoo.models import BertConfig, GPTConfig, T5Config
from zoo.tasks import BertClassifier, CausalLM, MaskedLM, Seq2SeqLM
from zoo.tasks.base import warmup_cosine
from zoo.tasks.optimizers import MuonConfig, MuonWithAdamW, decay_groups

VOCAB = 60
COMMON = dict(vocab_size=VOCAB, max_seq_len=16, embed_dim=32, num_layers=2, num_heads=4, dropout=0.0)
TASKS = {
    "gpt": lambda **kw: CausalLM(GPTConfig(**{**COMMON, **kw.pop("config", {})}), **kw),
    "llama": lambda **kw: CausalLM(GPTConfig.llama(**{**COMMON, **kw.pop("config", {})}), **kw),
    "moe": lambda **kw: CausalLM(GPTConfig.llama(**{**COMMON, "num_experts": 2, **kw.pop("config", {})}), **kw),
    "bert": lambda **kw: MaskedLM(BertConfig(**{**COMMON, **kw.pop("config", {})}), **kw),
    "t5": lambda **kw: Seq2SeqLM(T5Config(**{**COMMON, **kw.pop("config", {})}), **kw),
}
HIDDEN = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "gate_proj.weight",
          "up_proj.weight", "down_proj.weight")


def batch(family: str, g: torch.Generator) -> dict[str, torch.Tensor]:
    ids = torch.randint(4, VOCAB, (4, 16), generator=g)
    if family == "t5":
        target = torch.randint(4, VOCAB, (4, 8), generator=g)
        return {"input_ids": ids, "decoder_input_ids": target, "labels": target}
    if family == "bert":
        labels = torch.where(torch.rand(ids.shape, generator=g) < 0.3, ids, -100)
        return {"input_ids": ids, "labels": labels}
    return {"input_ids": ids}


def loss(task, family: str, g: torch.Generator) -> torch.Tensor:
    return task.forward_loss(batch(family, g))[0]


def train(task, family: str, steps: int, optimizer=None, scheduler=None, seed: int = 1) -> None:
    if optimizer is None:
        configured = task.configure_optimizers()
        optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(task, family, g).backward()
        optimizer.step()
        scheduler.step()


def assert_same(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_default_adamw_is_todays_fused_adamw_over_decay_groups_bit_for_bit(family):
    torch.manual_seed(0)
    task = TASKS[family](lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=2, max_steps=6)
    reference = copy.deepcopy(task)
    optimizer = task.configure_optimizers()["optimizer"]
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["fused"]
    # What configure_optimizers built before optimizers had names, written out here.
    ref_optimizer = torch.optim.AdamW(decay_groups(reference.model, 0.1), lr=3e-3, betas=(0.9, 0.95), eps=1e-8,
                                      fused=True)
    ref_scheduler = torch.optim.lr_scheduler.LambdaLR(ref_optimizer, lambda s: warmup_cosine(s, 2, 6, 0.1))
    train(task, family, 6)
    train(reference, family, 6, ref_optimizer, ref_scheduler)
    assert_same(task, reference)


@pytest.mark.parametrize("family", list(TASKS))
def test_muon_trains_each_hidden_projection_and_adamw_everything_else(family):
    task = TASKS[family](optimizer="muon")
    optimizer = task.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, MuonWithAdamW)
    names = {id(p): n for n, p in task.named_parameters()}
    on_muon = {names[id(p)] for g in optimizer.param_groups if g["optimizer"] == "muon" for p in g["params"]}
    on_adamw = {names[id(p)] for g in optimizer.param_groups if g["optimizer"] == "adamw" for p in g["params"]}
    assert on_muon and not on_muon & on_adamw and on_muon | on_adamw == set(names.values())
    hidden = {n for n in names.values() if n.endswith(HIDDEN) or n == "model.mlm_head.dense.weight"}
    assert on_muon == hidden  # per projection: q, k, v, out, gate, up, down each their own matrix
    assert all(task.get_parameter(n).ndim == 2 for n in on_muon)
    others = ("embed", "model.lm_head", "norm", "router", "mlm_head.decoder", "bias")
    assert not any(other in n for n in on_muon for other in others)


def test_each_group_takes_its_own_rate_and_decay_and_steps_as_torch_does():
    torch.manual_seed(0)
    muon = MuonConfig(lr=0.05, weight_decay=0.2, momentum=0.9, nesterov=False, ns_steps=4)
    task = TASKS["llama"](lr=2e-3, weight_decay=0.3, betas=(0.8, 0.9), eps=1e-7, warmup_steps=0,
                          scheduler="constant", optimizer="muon", muon=muon)
    reference = copy.deepcopy(task)
    optimizer = task.configure_optimizers()["optimizer"]
    by_name = {g["name"]: g for g in optimizer.param_groups}
    hidden = by_name["hidden"]
    assert (hidden["lr"], hidden["weight_decay"], hidden["momentum"], hidden["ns_steps"]) == (0.05, 0.2, 0.9, 4)
    assert (by_name["matrix"]["lr"], by_name["matrix"]["weight_decay"]) == (2e-3, 0.3)  # the untied head
    assert (by_name["vector"]["lr"], by_name["vector"]["weight_decay"]) == (2e-3, 0.0)
    # The same steps from PyTorch's two optimizers side by side.
    groups = [{**g, "params": [reference.get_parameter(n) for n in _names(task, g)]} for g in optimizer.param_groups]
    ref_muon = torch.optim.Muon([g for g in groups if g["optimizer"] == "muon"], lr=0.05, weight_decay=0.2,
                                momentum=0.9, nesterov=False, ns_steps=4)
    ref_adamw = torch.optim.AdamW([g for g in groups if g["optimizer"] == "adamw"], betas=(0.8, 0.9), eps=1e-7,
                                  fused=True)
    g_task, g_ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        optimizer.zero_grad()
        loss(task, "llama", g_task).backward()
        optimizer.step()
        ref_muon.zero_grad()
        ref_adamw.zero_grad()
        loss(reference, "llama", g_ref).backward()
        ref_muon.step()
        ref_adamw.step()
    assert_same(task, reference)


def _names(task, group) -> list[str]:
    names = {id(p): n for n, p in task.named_parameters()}
    return [names[id(p)] for p in group["params"]]


@pytest.mark.parametrize("family", ["gpt", "bert", "t5"])
def test_muon_state_dict_round_trip_continues_exactly(family):
    """Three steps, the optimizer and scheduler state saved and loaded into a fresh task (as a resumed
    run does), three more: the same weights as six steps without the break."""
    torch.manual_seed(0)
    task = TASKS[family](optimizer="muon", warmup_steps=2, max_steps=6, lr=3e-3)
    fresh = copy.deepcopy(task)
    straight = copy.deepcopy(task)
    train(straight, family, 6)

    configured = task.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    train(task, family, 3, optimizer, scheduler)
    saved = copy.deepcopy((task.state_dict(), optimizer.state_dict(), scheduler.state_dict()))
    assert any("momentum_buffer" in s for s in saved[1]["state"].values())
    assert any("exp_avg" in s for s in saved[1]["state"].values())

    fresh.load_state_dict(saved[0])
    configured = fresh.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    optimizer.load_state_dict(saved[1])
    scheduler.load_state_dict(saved[2])
    g = torch.Generator().manual_seed(1)
    for _ in range(3):  # the batches of steps 1-3, already taken
        batch(family, g)
    for _ in range(3):
        optimizer.zero_grad()
        loss(fresh, family, g).backward()
        optimizer.step()
        scheduler.step()
    assert_same(fresh, straight)


def test_mup_rates_per_group():
    width, base = 64, 16
    adamw = TASKS["gpt"](lr=1e-2, config=dict(embed_dim=width, parametrization="mup", base_width=base))
    groups = {g["name"]: g for g in adamw.configure_optimizers()["optimizer"].param_groups}
    assert groups["hidden"]["initial_lr"] == pytest.approx(1e-2 * base / width)  # AdamW: lr / width_mult
    assert groups["vector"]["initial_lr"] == 1e-2  # embeddings (the tied head too), norms, biases
    assert [p.ndim for p in groups["hidden"]["params"]] == [2] * len(groups["hidden"]["params"])

    muon = TASKS["gpt"](lr=1e-2, optimizer="muon", muon={"lr": 0.03},
                        config=dict(embed_dim=width, parametrization="mup", base_width=base))
    groups = {g["name"]: g for g in muon.configure_optimizers()["optimizer"].param_groups}
    assert groups["hidden"]["initial_lr"] == 0.03  # Muon's spectral step needs no width factor
    assert groups["vector"]["initial_lr"] == 1e-2


def test_refusals_are_one_line():
    def refused(match, make):
        with pytest.raises(ValueError, match=match) as error:
            make()
        assert "\n" not in str(error.value)

    refused(r"muon settings are given but optimizer='adamw'", lambda: TASKS["gpt"](muon={"lr": 0.1}))
    refused(r"optimizer='sgd' must be one of", lambda: TASKS["gpt"](optimizer="sgd"))
    refused(r"muon: unknown field\(s\) \['rate'\]", lambda: TASKS["gpt"](optimizer="muon", muon={"rate": 0.1}))
    refused(r"muon: lr=-1", lambda: TASKS["gpt"](optimizer="muon", muon={"lr": -1}))
    refused(r"parametrization='mup' has no rule for Muon with adjust_lr_fn='match_rms_adamw'",
            lambda: TASKS["gpt"](optimizer="muon", muon={"adjust_lr_fn": "match_rms_adamw"},
                                 config=dict(parametrization="mup", base_width=16)))
    # With every hidden matrix frozen, Muon would train nothing: refused when the optimizer is built.
    frozen = BertClassifier(BertConfig(**COMMON), labels=["a", "b"], freeze="body", optimizer="muon")
    refused(r"optimizer='muon' has no matrix weights left to train", frozen.configure_optimizers)


def test_muon_under_an_adapter_is_refused_in_one_line():
    pytest.importorskip("peft")
    task = BertClassifier(BertConfig(**COMMON), labels=["a", "b"], optimizer="muon",
                          adapter={"target_modules": ["q_proj", "k_proj", "v_proj", "out_proj", "up_proj", "down_proj",
                                                      "dense"]})
    with pytest.raises(ValueError, match="no matrix weights left to train") as error:
        task.configure_optimizers()
    assert "\n" not in str(error.value)


def test_muon_under_bf16_mixed_clips_the_gradient_norm():
    """Lightning's bf16-mixed plugin clips for Muon as for any optimizer: a clip of 1e-3 changes the
    steps (and the weights stay finite); the gradient norm the optimizer sees is the clipped one."""
    from zoo.analysis.training import train as fit
    from zoo.data import TextDataModule

    data = TextDataModule(objective="clm", tokenizer="char", max_seq_len=16, batch_size=4, max_documents=40)
    data.prepare_data()
    seen = []

    class Task(CausalLM):
        def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    def run(clip):
        torch.manual_seed(0)
        task = Task(GPTConfig(**{**COMMON, "vocab_size": data.vocab_size}), optimizer="muon", warmup_steps=0, lr=1e-2)
        fit(task, data, max_steps=3, val_batches=1, precision="bf16-mixed", gradient_clip_val=clip)
        return task

    clipped = run(1e-3)
    assert len(seen) == 3 and all(norm == pytest.approx(1e-3, rel=1e-3) for norm in seen)
    free = run(None)
    assert all(torch.isfinite(p).all() for p in clipped.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(clipped.parameters(), free.parameters(), strict=True))
