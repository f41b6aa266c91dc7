"""zoo.speed: compiled stacks without graph breaks in every family (training and generation),
clean checkpoints, and the SpeedMonitor's throughput, MFU and data-wait figures in a real fit.

Compilation uses cheap backends: ``aot_eager`` traces forward and backward (a graph break fails
``fullgraph=True`` there just as with inductor) without generating code; ``eager`` traces only.
"""

import datetime
import json
import logging
import os
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
import torch._dynamo
from torch.utils.data import DataLoader, Dataset

from zoo import speed
from zoo.flops import training_flops
from zoo.generation import generate
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.speed import (
    CompileModel,
    SpeedMonitor,
    compile_model,
    compile_units,
    is_compiled,
    measure_matmul_peak,
    reuse_freed_memory,
)
from zoo.tasks import CausalLM, MaskedLM, Seq2SeqLM
from zoo.tasks.classification import BertClassifier, GPTClassifier, T5Classifier
from zoo.tasks.instruction import InstructionLM, InstructionSeq2Seq

TINY = dict(vocab_size=61, embed_dim=32, num_layers=1, num_heads=4, max_seq_len=64, dropout=0.0)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny graphs: threads only add contention on a shared machine
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


def _padded(b=2, t=12):
    ids = torch.randint(4, 61, (b, t))
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, :4] = False
    return ids, mask


def test_a_long_run_does_not_outgrow_dynamos_cache():
    """Every stack shares one code object: T5's two stacks × train/eval × a few batch shapes are more
    than dynamo's default 8 versions, after which it would run the stacks eager without a word.
    compile_model keeps room for them: every one of 20 distinct calls is compiled."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = T5(T5Config(**TINY))
    with torch._dynamo.config.patch(recompile_limit=8):  # dynamo's default
        compile_model(model, backend=counting_backend, dynamic=False)  # static: each shape compiles anew
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                for b in range(1, 6):
                    ids = torch.randint(4, 61, (b, 8))
                    model(ids, ids[:, :5])
    assert len(graphs) == 2 * 2 * 5  # (encoder, decoder) × grad mode × batch size


@pytest.mark.parametrize("family", ["gpt", "llama", "bert", "t5"])
def test_training_step_compiles_without_graph_breaks(family):
    """fullgraph=True raises on any graph break, forward or backward; the compiled model keeps
    its parameter names and computes what the eager one does."""
    model = {"gpt": lambda: GPT(GPTConfig(**TINY)), "llama": lambda: GPT(GPTConfig.llama(**TINY)),
             "bert": lambda: BERT(BertConfig(**TINY)), "t5": lambda: T5(T5Config(**TINY))}[family]()
    ids, mask = _padded()
    run = (lambda m: m(ids, ids, mask, mask)) if family == "t5" else (lambda m: m(ids, mask))
    expected = run(model)
    expected.square().mean().backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    names = list(model.state_dict())

    compile_model(model, backend="aot_eager", fullgraph=True)
    assert is_compiled(model)
    out = run(model)
    out.square().mean().backward()
    torch.testing.assert_close(out, expected)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected_grads[name], msg=name)
    assert list(model.state_dict()) == names and not any("_orig_mod" in n for n in names)


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_compiled_decoding_step_equals_eager(family):
    """Generation runs the compiled stacks, cache and all, without a graph break; a second call
    reuses what the first compiled."""
    model = (GPT(GPTConfig(**TINY, position="alibi")) if family == "gpt" else T5(T5Config(**TINY))).eval()
    ids, mask = _padded(t=6)
    expected = generate(model, ids, mask, max_new_tokens=6, eos_token_id=None)
    compile_model(model, backend="eager", fullgraph=True, dynamic=True)
    assert torch.equal(generate(model, ids, mask, max_new_tokens=6, eos_token_id=None), expected)
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert torch.equal(generate(model, ids, mask, max_new_tokens=6, eos_token_id=None), expected)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames  # nothing recompiled


def _labelled(b=3, t=10, target=7):
    """One batch of every objective's format (right padding; -100 where nothing is scored)."""
    ids = torch.randint(4, 61, (b, t), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, -3:] = 0
    dec = torch.randint(4, 61, (b, target), generator=torch.Generator().manual_seed(2))
    mlm = torch.full_like(ids, -100)
    mlm[:, ::3] = ids[:, ::3]
    answer = ids.clone()
    answer[:, :4] = -100  # the prompt of an instruction example
    return {
        "clm": {"input_ids": ids, "labels": ids},
        "mlm": {"input_ids": ids, "attention_mask": mask, "labels": mlm},
        "seq2seq": {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec, "labels": dec},
        "classify": {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2, 1])[:b]},
        "instruct": {"input_ids": ids, "labels": answer},
    }


TASKS = {
    "gpt clm": (lambda: CausalLM(GPTConfig(**TINY)), "clm"),
    "llama clm": (lambda: CausalLM(GPTConfig.llama(**TINY)), "clm"),
    "bert mlm": (lambda: MaskedLM(BertConfig(**TINY)), "mlm"),
    "t5 seq2seq": (lambda: Seq2SeqLM(T5Config(**TINY)), "seq2seq"),
    "bert classifier": (lambda: BertClassifier(BertConfig(**TINY), num_labels=3), "classify"),
    "gpt classifier": (lambda: GPTClassifier(GPTConfig(**TINY), num_labels=3), "classify"),
    "t5 classifier": (lambda: T5Classifier(T5Config(**TINY), num_labels=3), "classify"),
    "gpt instruction": (lambda: InstructionLM(GPTConfig(**TINY)), "instruct"),
    "t5 instruction": (lambda: InstructionSeq2Seq(T5Config(**TINY)), "seq2seq"),
}


@pytest.mark.parametrize("name", list(TASKS))
def test_compiled_step_is_one_graph_and_equals_eager(name):
    """--compile.enabled compiles each task's whole step — model, output head and loss — as one graph
    (masked LM: two, its masked positions known only from the data): no graph break
    (``fullgraph=True``), same loss, logits and gradients as eager."""
    build, kind = TASKS[name]
    torch.manual_seed(0)
    task = build()
    batch = _labelled()[kind]
    loss, logits, labels = task.forward_loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None}
    task.zero_grad()

    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compile_model(task, backend=counter, fullgraph=True)
    assert compile_units(task, backend=counter, fullgraph=True) == list(type(task).compile_units)
    compiled_loss, compiled_logits, compiled_labels = task.forward_loss(batch)
    compiled_loss.backward()
    assert counter.frame_count == (2 if kind == "mlm" else 1)
    assert not compiled_logits.requires_grad  # a logits output needing grad costs a zero-filled backward input
    torch.testing.assert_close(compiled_loss, loss)
    torch.testing.assert_close(compiled_logits, logits)
    assert torch.equal(compiled_labels, labels)
    assert {n for n, p in task.named_parameters() if p.grad is not None} == set(grads)
    for n, p in task.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[n], msg=n)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt clm", "bert mlm", "t5 seq2seq"])
def test_inductor_compiled_step_equals_eager_under_bf16(name):
    """The real thing, as --compile.enabled with bf16-mixed runs it: inductor code for the whole step.
    bf16 rounds differently fused and unfused, so both are held to a float32 eager step: the compiled
    loss and every gradient are as close to it as eager bf16's are (within 2x, plus a hair)."""
    build, kind = TASKS[name]
    task = build()
    batch = _labelled()[kind]

    def step(dtype: torch.dtype) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        task.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = task.forward_loss(batch)[0]
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None}

    reference_loss, reference = step(torch.float32)
    eager_loss, eager = step(torch.bfloat16)
    compile_model(task)
    compile_units(task)
    compiled_loss, compiled = step(torch.bfloat16)
    assert abs(float(compiled_loss - reference_loss)) <= 2 * abs(float(eager_loss - reference_loss)) + 1e-3
    assert set(compiled) == set(reference)
    largest = max(float(g.abs().max()) for g in reference.values())
    for n, grad in reference.items():
        eager_error = float((eager[n] - grad).abs().max())
        assert float((compiled[n] - grad).abs().max()) <= 2 * eager_error + 1e-3 * largest, n


def test_masked_lm_head_compiles_once_for_any_number_of_masks():
    """The number of masked positions changes every batch: the head-and-loss graph is dynamic in it,
    even with --compile.dynamic false, instead of recompiling per batch."""
    task = MaskedLM(BertConfig(**TINY))
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compile_units(task, backend=counter, dynamic=False)
    batch = _labelled()["mlm"]
    for step in range(3):
        labels = torch.full_like(batch["labels"], -100)
        labels[:, : 2 + step] = batch["input_ids"][:, : 2 + step]  # 6, 9, 12 masked positions
        task.forward_loss({**batch, "labels": labels})[0].backward()
    assert counter.frame_count == 1


class _Blocks(Dataset):
    """Causal-LM batches of fixed shape, optionally slow to produce (a starving loader)."""

    def __init__(self, n: int, delay: float = 0.0):
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        ids = torch.randint(4, 61, (4, 16), generator=torch.Generator().manual_seed(index))
        return {"input_ids": ids, "labels": ids}


def _fit(tmp_path, callbacks, steps=4, delay=0.0):
    task = CausalLM(GPTConfig(**TINY), warmup_steps=1)
    trainer = L.Trainer(max_steps=steps, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        log_every_n_steps=1)
    trainer.fit(task, train_dataloaders=DataLoader(_Blocks(steps, delay), batch_size=None))
    return trainer, task


def test_compile_callback_trains_and_saves_clean_names(tmp_path):
    monitor = SpeedMonitor(peak_flops=1e12)
    trainer, task = _fit(tmp_path, [CompileModel(enabled=True, backend="aot_eager", fullgraph=True), monitor])
    assert is_compiled(task.model) and "forward_loss" in vars(task)  # the step compiled on the instance
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert state and not any("_orig_mod" in name for name in state)
    assert set(state) == set(CausalLM(GPTConfig(**TINY)).state_dict())


def test_compile_is_off_by_default(tmp_path):
    _, task = _fit(tmp_path, [CompileModel()], steps=1)
    assert not is_compiled(task.model) and "forward_loss" not in vars(task)


def test_speed_monitor_logs_throughput_mfu_and_data_wait(tmp_path):
    monitor = SpeedMonitor(peak_flops=1e12, window=2)
    trainer, task = _fit(tmp_path, [monitor], steps=5)
    logged = trainer.callback_metrics
    for name in ("train/tokens_per_sec", "train/tflops_per_sec", "train/mfu", "train/data_wait"):
        assert name in logged, name
    assert {"tok/s", "mfu%", "wait%"} <= set(trainer.progress_bar_metrics)
    # MFU is the model's own FLOP count over time over the given peak, in percent everywhere.
    batch = _Blocks(1)[0]
    flops_per_sec = float(logged["train/tflops_per_sec"]) * 1e12
    assert float(logged["train/mfu"]) == pytest.approx(100 * flops_per_sec / 1e12, rel=1e-4)
    assert float(trainer.progress_bar_metrics["mfu%"]) == pytest.approx(float(logged["train/mfu"]), rel=1e-4)
    mfu = 100 * monitor._totals[2] / monitor._totals[0] / 1e12
    assert f"MFU {mfu:.1f} %" in monitor.summary()
    tokens_per_sec = float(logged["train/tokens_per_sec"])
    assert flops_per_sec / tokens_per_sec == pytest.approx(training_flops(task.config, batch) / 64, rel=1e-4)
    assert "MFU" in monitor.summary() and "data wait" in monitor.summary()


def test_data_wait_share_shows_a_starving_loader(tmp_path):
    """A loader that sleeps 0.25 s per batch, feeding a step of milliseconds, is most of the time."""
    slow = SpeedMonitor(peak_flops=1e12, window=3)
    trainer, _ = _fit(tmp_path, [slow], steps=4, delay=0.25)
    assert float(trainer.callback_metrics["train/data_wait"]) > 50  # percent
    fast = SpeedMonitor(peak_flops=1e12, window=3)
    trainer, _ = _fit(tmp_path, [fast], steps=4)
    assert float(trainer.callback_metrics["train/data_wait"]) < float(slow.metrics()["data_wait"])


def test_cpu_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    """The CPU peak is measured at the first fit and read back by every later one (same denominator,
    same MFU scale); the file says when it was measured and how to refresh it."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    calls = []

    def measure(dtype, device, sizes=(1024, 2048), seconds=1.0):
        calls.append((dtype, seconds))
        return 1.5e11 * len(calls)

    monkeypatch.setattr(speed, "measure_matmul_peak", measure)
    monitor = SpeedMonitor(window=2)
    _fit(tmp_path, [monitor], steps=2)
    assert monitor.peak == 1.5e11 and calls == [(torch.float32, speed.CACHED_PEAK_SECONDS)]
    cached = json.loads((tmp_path / "matmul_peaks.json").read_text())
    assert "python -m zoo.speed --refresh" in cached["about"]
    (entry,) = cached["peaks"].values()
    assert entry == {"flops": 1.5e11, "measured": datetime.date.today().isoformat()}
    again = SpeedMonitor(window=2)
    _fit(tmp_path, [again], steps=2)
    assert again.peak == 1.5e11 and len(calls) == 1 and "measured" in again.peak_source
    # --refresh measures again (longer) and replaces the entry.
    speed.main(["--refresh", "--dtype", "float32"])
    assert calls[-1] == (torch.float32, speed.REFRESH_PEAK_SECONDS)
    assert speed.cached_matmul_peak(torch.float32)[0] == 3e11


@pytest.mark.parametrize("idle_now", [True, False], ids=["idle-now", "still-busy"])
def test_a_cached_peak_below_the_runs_own_rate_is_measured_again(tmp_path, monkeypatch, caplog, idle_now):
    """A peak cached while the machine was busy reads MFU over 100 %: the run measures it again, once,
    and keeps the higher figure, in the cache too; if the machine is still busy it says so."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(speed, "measure_matmul_peak", lambda *args, **kwargs: 1e3)  # the busy first measurement
    speed.cached_matmul_peak(torch.float32)
    measured = []
    again = 1e15 if idle_now else 5e2

    def measure(*args, **kwargs):
        measured.append(again)
        return again

    monkeypatch.setattr(speed, "measure_matmul_peak", measure)
    monitor = SpeedMonitor(window=2)
    caplog.set_level(logging.INFO, logger="lightning.pytorch")  # whatever an earlier test left it at
    if idle_now:
        trainer, _ = _fit(tmp_path, [monitor], steps=5)
        assert "above the cached peak of 0.0 (measured while the machine was busy)" in caplog.text
        assert "now the MFU denominator" in caplog.text and float(trainer.callback_metrics["train/mfu"]) < 100
    else:
        with pytest.warns(UserWarning, match="measured again, the peak is 0.0 GFLOP/s, still below: MFU reads over"):
            _fit(tmp_path, [monitor], steps=5)
    assert measured == [again], "measured again once"
    assert monitor.peak == max(1e3, again) == speed.cached_matmul_peak(torch.float32)[0]  # never lowered


def test_given_peak_wins_and_must_be_positive(tmp_path):
    monitor = SpeedMonitor(peak_flops=2e12)
    _fit(tmp_path, [monitor], steps=1)
    assert (monitor.peak, monitor.peak_source) == (2e12, "given")
    with pytest.raises(ValueError, match="peak_flops=0"):
        SpeedMonitor(peak_flops=0)


def test_measured_peak_is_a_rate():
    peak = measure_matmul_peak(torch.float32, sizes=(128,), seconds=0.05)
    assert 1e6 < peak < 1e15


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_fused_adamw_clips_gradients_under_mixed_precision(tmp_path, precision):
    """Lightning's mixed-precision plugin refuses to clip for a fused optimizer; the tasks clip
    themselves where that is right (bf16 has no gradient scaler): the clipped norm holds."""
    norms = []

    class Recorder(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):  # the step's gradients, as clipped
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    task = CausalLM(GPTConfig(**TINY), warmup_steps=1)
    trainer = L.Trainer(max_steps=2, precision=precision, gradient_clip_val=1e-3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[Recorder()])
    trainer.fit(task, train_dataloaders=DataLoader(_Blocks(2), batch_size=None))
    assert task.optimizers().optimizer.defaults["fused"]
    assert norms and max(norms) <= 1e-3 * 1.001


_FAULTS_SCRIPT = """
import resource, sys, torch
from zoo.speed import reuse_freed_memory
print(reuse_freed_memory() if sys.argv[1] == "reuse" else False)
for _ in range(3):  # 32 MiB: the first allocations grow the heap either way
    torch.empty(8 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(8 << 20).fill_(1.0)  # allocate, touch every page, free
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_freed_memory_is_reused_without_page_faults():
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True,
                             env={**os.environ, "ZOO_SYSTEM_MALLOC": ""})
        applied, count = out.stdout.split()
        return applied, int(count)

    applied, reused = faults("reuse")
    if applied != "True":
        pytest.skip("not glibc")
    _, fresh = faults("system")
    # Ten fresh 32 MiB blocks fault in ~8,000 pages each; reused ones none (at most one block's pages
    # more, while the heap settles, depending on where earlier allocations left its top).
    assert fresh > 10 * 4000 and reused < 8192 + 500, (fresh, reused)


def test_zoo_system_malloc_opts_out(monkeypatch):
    monkeypatch.setenv("ZOO_SYSTEM_MALLOC", "1")
    assert reuse_freed_memory() is False
