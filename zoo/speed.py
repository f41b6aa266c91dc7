"""Training speed: compiling a zoo model, the machine's matmul peak, and a monitor that shows
throughput, model FLOPs utilisation (MFU) and the share of step time spent waiting for data.

- ``compile_model`` / ``CompileModel`` (``--compile.enabled true``): ``torch.compile`` on every
  ``TransformerStack`` of the model (and BERT's MLM head), in place, so every objective and
  generation — which call the stacks through ``forward``, ``encode`` or ``decode`` — runs compiled,
  and parameter names stay those of the eager model (``nn.Module.compile`` keeps them; no
  ``_orig_mod.``); and the task's training step — model, output head and loss — as one graph
  (``compile_units``). Eager stays the default and the reference.
- ``measure_matmul_peak``: FLOP/s of large square matmuls on this device and dtype — the
  denominator of MFU on a CPU, where Lightning knows no peak.
- ``reuse_freed_memory`` (every ``zoo`` command on Linux): glibc's malloc keeps freed memory for
  reuse instead of unmapping it, which spared an eager CPU training step ~20,000 page faults.
- ``SpeedMonitor`` (on in every ``zoo fit``): tokens/s, FLOP/s and MFU from the model's own FLOP
  count (``zoo.flops``), logged and in the progress bar, and the data-wait share.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from zoo.blocks.stack import TransformerStack
from zoo.flops import batch_tokens, training_flops
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig

# Dense bf16/fp16 tensor-core peaks (FLOP/s) for GPUs whose name contains the key, first match wins.
# Source: NVIDIA's product datasheets, which print the figure "with sparsity" (2x) and footnote the dense
# one: H100 SXM5 and H200 SXM 989.4 TFLOPS, H100 PCIe 756, A100 (SXM and PCIe) 312, L40S 362.05, A10
# 125 (the figure used for AWS's A10G too), L4 121. Lightning has a table as well, but lists the H200
# at its sparse figure (2.0e15) and misses plain "NVIDIA H200".
GPU_BF16_PEAKS = {"h200": 989e12, "h100 pcie": 756e12, "h100": 989e12, "a100": 312e12, "l40s": 362e12,
                  "a10g": 125e12, "l4": 121e12}


# ---------------------------------------------------------------------------------------------
# Compiling

# Compiled versions kept per function (dynamo's default: 8); see compile_model.
RECOMPILE_LIMIT = 64


def compile_model(
    model: nn.Module,
    *,
    backend: str | Callable[..., Any] = "inductor",
    mode: str | None = None,
    fullgraph: bool = False,
    dynamic: bool | None = None,
) -> nn.Module:
    """Compile every ``TransformerStack`` inside ``model`` in place and return ``model``.

    The stacks hold the layers, masks and positions — nearly all of a step's work — and every path
    runs through them: ``forward``, BERT's ``encode`` under the masked-LM head, T5's ``encode`` and
    ``decode``, and each decoding step of ``zoo.generation.generate``. An output head that is more
    than one projection (``ZooModel.output_head``: BERT's MLM head — dense, activation, norm,
    vocabulary projection) is compiled too, which made a BERT bf16 step about 5 % faster; GPT's and
    T5's ``lm_head`` is a bare ``nn.Linear``, one matmul, which dynamo does not trace. A training step
    gets its head and loss into the graph through ``compile_units`` (``CompileModel`` does both).
    ``nn.Module.compile`` leaves the module tree and
    ``state_dict`` keys as they were, so checkpoints are unchanged. Already-compiled modules are
    left alone.

    Args:
        model: A zoo model, or any module containing zoo stacks (a task).
        backend: ``torch.compile`` backend; ``aot_eager`` traces without generating code (tests).
        mode: ``torch.compile`` mode (``max-autotune``, ``reduce-overhead``, ...); None = default.
        fullgraph: Fail on any graph break instead of falling back to eager for part of the stack.
        dynamic: Compile for varying shapes (True), specialise (False), or let torch decide on the
            first recompile (None). Generation passes True: each decoding step has one more key.
    """
    stacks = [m for m in model.modules() if isinstance(m, TransformerStack)]
    if not stacks:
        raise ValueError(f"compile_model: {type(model).__name__} holds no zoo TransformerStack to compile")
    heads = [m.output_head for m in model.modules() if isinstance(m, ZooModel) and type(m.output_head) is not nn.Linear]
    # Every stack shares one code object, and dynamo keeps 8 compiled versions of a function by
    # default before it runs the rest eager (one warning, easy to miss): T5's encoder and decoder
    # shapes × training / validation grad mode × a last partial batch filled all 8 in a 100-step
    # `zoo fit --config configs/t5_span.yaml --config configs/speed/fast.yaml`.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for module in stacks + heads:
        if getattr(module, "_compiled_call_impl", None) is None:
            module.compile(backend=backend, mode=mode, fullgraph=fullgraph, dynamic=dynamic)
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether ``compile_model`` has compiled the stacks of ``model``."""
    return any(getattr(m, "_compiled_call_impl", None) is not None
               for m in model.modules() if isinstance(m, TransformerStack))


class CompileModel(Callback):
    """Compile the task before the first step; off unless ``enabled``.

    Two things are compiled. The model's stacks (``compile_model``), which every path runs through:
    validation, prediction and generation included. And the task's step, each method the task names
    in ``compile_units`` (``LanguageModelTask.forward_loss``: embeddings, stacks, output head and
    loss), replaced on the instance by its ``torch.compile``'d form, inside which dynamo inlines the
    stacks — one graph for the whole step of causal LM, seq2seq, instruction tuning and the
    classifiers; two for masked LM, whose masked positions are known only from the data (encoder
    stack, then head and loss). A vocabulary head left outside the graph ran eagerly: profiled on a
    CPU (GPT-2 shape, bf16, sequence 512), its forward matmul took 18.6 ms there against 3.1 ms in
    transformers' compiled graph, and the step 170 ms against transformers' 164.

    From YAML: ``compile: {enabled: true}`` (or ``--compile.enabled true``). Compiling takes tens of
    seconds on a CPU and pays off over long runs; the eager model is the reference it is tested
    against (values and gradients, every family and objective: ``tests/test_speed.py``).

    Args:
        enabled: Compile at all.
        backend: ``torch.compile`` backend (``inductor``; ``aot_eager`` only checks tracing).
        mode: ``torch.compile`` mode; None = default. ``max-autotune-no-cudagraphs`` searches
            kernels on a GPU.
        fullgraph: Fail on a graph break (the test suite proves there is none, but for masked LM's
            one by design and the mixture-of-experts block's).
        dynamic: As in ``compile_model``; None lets torch mark a dimension dynamic when it changes
            (padded batches of varying length).
    """

    def __init__(
        self,
        enabled: bool = False,
        backend: str = "inductor",
        mode: str | None = None,
        fullgraph: bool = False,
        dynamic: bool | None = None,
    ) -> None:
        super().__init__()
        self.enabled, self.backend, self.mode, self.fullgraph, self.dynamic = enabled, backend, mode, fullgraph, dynamic

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.enabled:
            return
        compile_model(pl_module, backend=self.backend, mode=self.mode, fullgraph=self.fullgraph, dynamic=self.dynamic)
        compile_units(pl_module, backend=self.backend, mode=self.mode, fullgraph=self.fullgraph, dynamic=self.dynamic)


def compile_units(
    module: nn.Module,
    *,
    backend: str | Callable[..., Any] = "inductor",
    mode: str | None = None,
    fullgraph: bool = False,
    dynamic: bool | None = None,
) -> list[str]:
    """Replace each method named in ``module.compile_units`` by its ``torch.compile``'d form, on the
    instance (once: a second call leaves them be); returns the names. A module without the attribute
    (a task from outside the zoo) is left alone."""
    compiled = []
    for name in getattr(module, "compile_units", ()):
        if name not in vars(module):  # an instance attribute: compiled already
            method = getattr(module, name)
            setattr(module, name, torch.compile(method, backend=backend, mode=mode, fullgraph=fullgraph,
                                                dynamic=dynamic))
        compiled.append(name)
    return compiled


# ---------------------------------------------------------------------------------------------
# The CPU allocator

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# Free memory at the top of the heap kept before any goes back to the OS.
_TRIM_THRESHOLD_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the OS; True
    if it was set (Linux with glibc, unless ``ZOO_SYSTEM_MALLOC=1``).

    PyTorch allocates CPU tensors with plain ``malloc``, and glibc serves large requests with a
    fresh ``mmap`` that ``free`` unmaps again, so every large activation, gradient or temporary of
    every step is faulted in page by page: an eager fp32 GPT-2-shaped training step (width 256, 4
    layers, 1024 tokens, vocab 8192) took ~20,000 page faults and 53 ms of kernel time; with
    ``mmap`` off and trimming raised to 1 GiB, 256 faults and 3 ms (``getrusage``). PyTorch's
    CPU tuning guide gets the same by preloading jemalloc or tcmalloc; this needs no library. Memory
    freed stays in the process (its resident size stays near its peak), as a GPU caching allocator
    keeps it. Process-wide and permanent: the ``zoo`` command calls it once at start-up.
    """
    if os.environ.get("ZOO_SYSTEM_MALLOC") == "1" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success. M_MMAP_MAX=0 serves every request from the heap; the trim
    # threshold keeps what is freed there (glibc's default returns it above 128 KiB).
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))


# ---------------------------------------------------------------------------------------------
# The machine's peak


def measure_matmul_peak(
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    sizes: tuple[int, ...] = (1024, 2048),
    seconds: float = 1.0,
) -> float:
    """FLOP/s of the fastest square ``n × n`` matmul in ``sizes``, best of repeated short rounds.

    The best round, not the mean: other processes on the machine only ever slow a round down, so
    the fastest is the closest to what the hardware can do. Takes about ``seconds``.
    """
    device = torch.device(device)
    budget = seconds / len(sizes)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b  # first call: allocation, kernel selection
        deadline = time.perf_counter() + budget
        while time.perf_counter() < deadline:
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


# How long the one-off measurement of a machine's peak runs at the first fit (what every fit spent
# before it was cached, so a test suite of many fresh cache directories gets no slower), and how long
# ``python -m zoo.speed --refresh`` runs by default (the best round counts, and a longer run is less
# likely to be set by a moment of load from other processes).
CACHED_PEAK_SECONDS = 1.0
REFRESH_PEAK_SECONDS = 4.0
REFRESH_PEAK_COMMAND = "python -m zoo.speed --refresh"


def peak_cache_file() -> Path:
    """Where measured matmul peaks are kept: ``$ZOO_CACHE_DIR/matmul_peaks.json`` (default
    ``~/.cache/zoo``)."""
    from zoo.data.datamodule import default_cache_dir

    return default_cache_dir() / "matmul_peaks.json"


def _peak_key(dtype: torch.dtype, device: torch.device) -> str:
    """What a measured peak depends on: the processor (or GPU), the threads torch uses, torch's
    version (its matmul kernels) and the dtype."""
    if device.type == "cuda":
        chip = torch.cuda.get_device_name(device)
    else:
        chip = _cpu_name()
        chip += f", {torch.get_num_threads()} threads"
    return f"{chip}; torch {torch.__version__.split('+')[0]}; {str(dtype).removeprefix('torch.')}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cached_matmul_peak(
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    *,
    refresh: bool = False,
    seconds: float = CACHED_PEAK_SECONDS,
    keep_higher: bool = False,
) -> tuple[float, str]:
    """``(FLOP/s, where it came from)``: this machine's matmul peak in ``dtype``, measured once
    (``measure_matmul_peak`` for ``seconds``) and kept in ``peak_cache_file()`` with the date, so
    every run's MFU has the same denominator — measured afresh at each start-up it read 51–94
    GFLOP/s on one shared machine. ``refresh`` measures again and replaces the entry (from the
    shell: ``python -m zoo.speed --refresh``); with ``keep_higher`` too, a lower new figure is not
    kept (a busy machine only ever measures low)."""
    device = torch.device(device)
    key = _peak_key(dtype, device)
    path = peak_cache_file()
    entries = _read_peaks(path)
    entry = entries.get(key)
    if entry is None or refresh:
        flops = measure_matmul_peak(dtype, device, seconds=seconds)
        if keep_higher and entry is not None and flops <= float(entry["flops"]):
            return float(entry["flops"]), f"{key} matmul measured {entry['measured']}, cached in {path}"
        entry = {"flops": flops, "measured": datetime.date.today().isoformat()}
        entries = {**_read_peaks(path), key: entry}  # re-read: another process may have written meanwhile
        _write_peaks(path, entries)
    return float(entry["flops"]), f"{key} matmul measured {entry['measured']}, cached in {path}"


def _read_peaks(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    peaks = data.get("peaks") if isinstance(data, dict) else None
    return {k: v for k, v in peaks.items() if isinstance(v, dict) and "flops" in v} if isinstance(peaks, dict) else {}


def _write_peaks(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    data = {"about": "Fastest square matmul measured on this machine (FLOP/s), the denominator of zoo's MFU. "
                     f"Refresh: {REFRESH_PEAK_COMMAND} (or delete this file).", "peaks": entries}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(data, tmp, indent=1)
        os.replace(tmp.name, path)  # atomic: a reader sees the old file or the new one
    except OSError as error:  # a read-only cache: the measurement still serves this run
        rank_zero_warn(f"SpeedMonitor: could not cache the matmul peak in {path} ({error})")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpu_peak_flops(device: torch.device | None = None) -> float | None:
    """Dense bf16 datasheet peak of the CUDA device, or None for a GPU not in ``GPU_BF16_PEAKS``."""
    name = torch.cuda.get_device_name(device).lower()
    for key, peak in GPU_BF16_PEAKS.items():
        if key in name:
            return peak
    return None


def precision_dtype(precision: str | int | None) -> torch.dtype:
    """The matmul dtype of a Lightning ``precision`` setting (``bf16-mixed`` → bfloat16, ...)."""
    name = str(precision)
    if name.startswith("bf16"):
        return torch.bfloat16
    if name.startswith("16"):
        return torch.float16
    if name.startswith("64"):
        return torch.float64
    return torch.float32


# ---------------------------------------------------------------------------------------------
# Monitoring

class SpeedMonitor(Callback):
    """Tokens/s, FLOP/s, MFU and data-wait share while training, logged and in the progress bar.

    The same idea as Lightning's ``ThroughputMonitor``, fed with the zoo's own FLOP count per
    batch (``zoo.flops.training_flops``: matmul FLOPs of forward + backward) and a peak Lightning
    cannot know on a CPU: ``peak_flops`` if given; else a GPU's dense bf16 datasheet figure
    (``GPU_BF16_PEAKS``) under bf16/fp16; else this machine's matmul peak in the run's precision,
    measured once and cached (``cached_matmul_peak``; ``python -m zoo.speed --refresh`` measures
    again). Rates are averaged over the last ``window`` steps; the first step (compilation,
    allocation) is left out.

    Data wait is the time the loop spends fetching the next batch from the data loader (Lightning's
    ``train_dataloader_next`` action, timed through the trainer's profiler hooks) as a share of the
    time between step ends; a loader that keeps up stays near 0 %. A summary line prints at the end.

    MFU and data wait are percentages everywhere — logged, in the progress bar and in the summary.
    Logged (``train/`` prefix): ``tokens_per_sec``, ``tflops_per_sec``, ``mfu`` (%), ``data_wait``
    (%); the progress bar shows ``tok/s``, ``mfu%`` and ``wait%``.

    Args:
        peak_flops: FLOP/s of one device in the run's precision (e.g. ``989e12``); None = the
            datasheet or the cached measurement.
        window: Steps the rates average over.
        prog_bar: Show the figures in the progress bar.
    """

    #: Progress-bar label of each logged figure.
    BAR = {"tok/s": "tokens_per_sec", "mfu%": "mfu", "wait%": "data_wait"}

    def __init__(self, peak_flops: float | None = None, window: int = 20, prog_bar: bool = True) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"SpeedMonitor: window={window} must be >= 1")
        if peak_flops is not None and peak_flops <= 0:
            raise ValueError(f"SpeedMonitor: peak_flops={peak_flops} must be > 0 FLOP/s (e.g. 989e12), or null")
        self.peak_flops, self.window, self.prog_bar = peak_flops, window, prog_bar
        self.peak: float | None = None
        self.peak_source = ""
        self._steps: deque[tuple[float, int, int, float]] = deque(maxlen=window + 1)  # (end, tokens, flops, wait)
        self._wait = 0.0
        self._fetch_start: float | None = None
        self._count_flops = True
        self._warming_up = True
        self._restore_profiler: tuple[Any, Any, Any] | None = None
        self._totals = [0.0, 0, 0, 0.0]  # seconds, tokens, flops, wait — for the summary line
        self._measured: tuple[torch.dtype, torch.device] | None = None  # the peak is this machine's cached one

    # -- set-up: the peak, and a timer on the loader's fetch -----------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        dtype = precision_dtype(trainer.precision)
        device = trainer.strategy.root_device
        if self.peak_flops is not None:
            self.peak, self.peak_source = float(self.peak_flops), "given"
        elif device.type == "cuda" and dtype in (torch.bfloat16, torch.float16) and gpu_peak_flops(device):
            self.peak, self.peak_source = gpu_peak_flops(device), "datasheet"
        else:
            self.peak, self.peak_source = cached_matmul_peak(dtype, device)
            self._measured = (dtype, device)
        rank_zero_info(f"SpeedMonitor: peak {self.peak / 1e9:,.0f} GFLOP/s per device ({self.peak_source})")
        self._wrap_profiler(trainer)

    def _wrap_profiler(self, trainer: L.Trainer) -> None:
        """Time the fetch of each training batch. Lightning's loop brackets it with
        ``profiler.start/stop("[_TrainingEpochLoop].train_dataloader_next")`` whatever profiler is
        set; wrapping those two calls on this trainer's profiler measures exactly the fetch, where
        the gap between batch hooks would also count validation and checkpoint writing."""
        profiler = trainer.profiler
        start, stop = profiler.start, profiler.stop

        def timed_start(action_name: str) -> None:
            if action_name.endswith("train_dataloader_next"):
                self._fetch_start = time.perf_counter()
            start(action_name)

        def timed_stop(action_name: str) -> None:
            stop(action_name)
            if action_name.endswith("train_dataloader_next") and self._fetch_start is not None:
                self._wait += time.perf_counter() - self._fetch_start
                self._fetch_start = None

        profiler.start, profiler.stop = timed_start, timed_stop
        self._restore_profiler = (profiler, start, stop)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._restore_profiler is not None:
            profiler, start, stop = self._restore_profiler
            profiler.start, profiler.stop = start, stop
            self._restore_profiler = None

    # -- per step ------------------------------------------------------------------------------

    def _restart(self, now: float) -> None:
        self._steps.clear()
        self._steps.append((now, 0, 0, 0.0))
        self._wait = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._warming_up = True
        self._restart(time.perf_counter())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation is not training time: start the window afresh after it.
        if not trainer.sanity_checking and self._steps:
            self._restart(time.perf_counter())

    def _flops(self, pl_module: L.LightningModule, batch: Any) -> int:
        """The task's own ``flops_per_batch`` (Lightning's ThroughputMonitor convention: a number or a
        function of the batch) if it has one, else ``zoo.flops`` — without the vocabulary head for a
        classifier."""
        if not self._count_flops:
            return 0
        custom = getattr(pl_module, "flops_per_batch", None)
        if custom is not None:
            return int(custom(batch) if callable(custom) else custom)
        config = getattr(pl_module, "config", None)
        if not isinstance(config, TransformerConfig) or not isinstance(batch, Mapping):
            return 0
        from zoo.tasks.classification import SequenceClassifier

        try:
            return training_flops(config, batch, lm_head=not isinstance(pl_module, SequenceClassifier))
        except (KeyError, ValueError) as error:  # a batch format zoo.flops does not know: tokens only
            rank_zero_warn(f"SpeedMonitor: no FLOP count for this batch ({error!r}); MFU is not shown")
            self._count_flops = False
            return 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # the step's kernels must be done for its end time to mean anything
        now = time.perf_counter()
        if self._warming_up:  # the first step compiles, allocates and fills caches: not a rate
            self._warming_up = False
            self._restart(now)
            return
        tokens = batch_tokens(batch) if isinstance(batch, Mapping) and "input_ids" in batch else 0
        flops = self._flops(pl_module, batch)
        self._steps.append((now, tokens, flops, self._wait))
        previous = self._steps[-2][0] if len(self._steps) > 1 else now
        self._totals = [self._totals[0] + now - previous, self._totals[1] + tokens, self._totals[2] + flops,
                        self._totals[3] + self._wait]
        self._wait = 0.0
        metrics = self.metrics(trainer.world_size)
        if metrics.get("mfu", 0) > 100 and self._measured is not None:
            self._measure_again(metrics["tflops_per_sec"] * 1e12 / trainer.world_size)
            metrics = {}
        if metrics:
            for name, value in metrics.items():
                pl_module.log(f"train/{name}", value, on_step=True, on_epoch=False, logger=True, prog_bar=False,
                              batch_size=1, rank_zero_only=True)
            if self.prog_bar:
                for short, name in self.BAR.items():
                    if name in metrics:
                        pl_module.log(short, metrics[name], on_step=True, on_epoch=False, logger=False,
                                      prog_bar=True, batch_size=1, rank_zero_only=True)

    def _measure_again(self, achieved: float) -> None:
        """The run computes faster than the cached peak: that peak was measured while other work
        slowed the machine down. Measure it again (once), cache the better figure, and start the
        rates afresh (the measuring took time)."""
        dtype, device = self._measured
        self._measured = None
        old = self.peak
        self.peak, self.peak_source = cached_matmul_peak(dtype, device, refresh=True, keep_higher=True)
        said = (f"SpeedMonitor: this run computes at {achieved / 1e9:,.1f} GFLOP/s, above the cached peak of "
                f"{old / 1e9:,.1f} (measured while the machine was busy); measured again, the peak is "
                f"{self.peak / 1e9:,.1f} GFLOP/s")
        if self.peak > achieved:
            rank_zero_info(f"{said}, now the MFU denominator ({self.peak_source})")
        else:
            rank_zero_warn(f"{said}, still below: MFU reads over 100 % (the machine is busy now too; "
                           f"{REFRESH_PEAK_COMMAND} on an idle machine)")
        self._restart(time.perf_counter())

    def metrics(self, world_size: int = 1) -> dict[str, float]:
        """The rates over the steps in the window (empty before the first full step); ``mfu`` and
        ``data_wait`` in percent."""
        if len(self._steps) < 2:
            return {}
        steps = list(self._steps)
        elapsed = steps[-1][0] - steps[0][0]
        if elapsed <= 0:
            return {}
        tokens = sum(s[1] for s in steps[1:]) * world_size
        flops = sum(s[2] for s in steps[1:]) * world_size
        out = {"tokens_per_sec": tokens / elapsed, "data_wait": 100 * sum(s[3] for s in steps[1:]) / elapsed}
        if flops:
            out["tflops_per_sec"] = flops / elapsed / 1e12
            if self.peak:
                out["mfu"] = 100 * flops / elapsed / (self.peak * world_size)
        return out

    def summary(self) -> str:
        """One line over the whole run's training steps (validation excluded)."""
        seconds, tokens, flops, wait = self._totals
        if seconds <= 0:
            return "SpeedMonitor: no training step timed"
        line = f"SpeedMonitor: {tokens / seconds:,.0f} tokens/s"
        if flops:
            line += f", {flops / seconds / 1e9:,.1f} GFLOP/s"
            if self.peak:
                mfu = 100 * flops / seconds / self.peak
                line += f" = MFU {mfu:.1f} % of {self.peak / 1e9:,.0f} GFLOP/s ({self.peak_source})"
        return line + f"; data wait {100 * wait / seconds:.1f} % of step time"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rank_zero_info(self.summary())


def main(argv: list[str] | None = None) -> None:
    """``python -m zoo.speed [--refresh] [--dtype ...]``: this machine's cached matmul peaks, the
    denominator of MFU on a CPU; ``--refresh`` measures them again (after a hardware or torch change,
    or when the first measurement ran on a busy machine)."""
    parser = argparse.ArgumentParser(prog="python -m zoo.speed", description=main.__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="measure again and replace the cached figures")
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=REFRESH_PEAK_SECONDS, help="measuring time per dtype")
    args = parser.parse_args(argv)
    for name in args.dtype:
        flops, source = cached_matmul_peak(getattr(torch, name), args.device, refresh=args.refresh,
                                           seconds=args.seconds)
        print(f"{name}: {flops / 1e9:,.0f} GFLOP/s ({source})")


if __name__ == "__main__":
    main()
