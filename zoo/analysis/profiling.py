"""What a model costs: wall time of a call, peak memory of a call, and KV-cache bytes.

Timings are medians over repeats after a warm-up (the first call pays for lazy initialisation and
allocator growth). To compare several calls, ``time_interleaved`` times them in alternating rounds,
as benchmarks do, so that a burst of background load hits every candidate alike, and pairs the
timings by round. Peak memory counts the bytes of tensors that torch allocates during the call above
what was live before it: ``torch.cuda.max_memory_allocated`` on a GPU, the profiler's memory records
on a CPU (where no allocator keeps a peak).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from zoo.blocks.stack import StackCache
from zoo.models.config import TransformerConfig
from zoo.tasks.formats import format_of


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """Max minus min, a plain measure of how noisy the timings were."""
        return max(self.times) - min(self.times)


def _synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, device: torch.device | str | None = None
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones (CUDA synchronised
    around each when ``device`` is a GPU)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = 7,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    """Time several calls in alternating rounds: name → the median seconds of each round.

    Every call is warmed up first; then each round times every call ``repeats`` times in a row, the
    order rotating from round to round (ABC, BCA, CAB, ...) so that no call always runs first. Round
    ``i`` of one call is paired with round ``i`` of another (the same stretch of background load):
    compare them with ``zoo.analysis.stats.paired_comparison``.
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one call to time")
    if rounds < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"rounds={rounds} and repeats={repeats} must be >= 1, warmup={warmup} >= 0")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(time_call(fns[name], repeats=repeats, warmup=0, device=device).median)
    return times


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Peak bytes of tensors allocated by ``fn()`` on ``device``, above what was live before the call.

    On CUDA: the allocator's peak. On CPU: the running sum of the profiler's allocation and free
    records, in time order (allocations and frees inside one op net out, so a kernel's short-lived
    scratch space can be missed; everything autograd keeps for backward is counted).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != "cpu":
        raise ValueError(f"peak_memory_bytes measures cpu or cuda, not {device.type}")
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = sorted(
        (event.time_range.start, event.self_cpu_memory_usage)
        for event in prof.events()
        if event.self_cpu_memory_usage
    )
    live = peak = 0
    for _, change in records:
        live += change
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ backend prints a start and a stop line to file descriptor 2 on every use;
    send that descriptor to /dev/null meanwhile (Python exceptions and ``sys.stderr`` objects that
    do not write to it are unaffected)."""
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def kv_cache_bytes(
    config: TransformerConfig,
    seq_len: int,
    *,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    context_len: int = 0,
) -> int:
    """Bytes of the keys and values a decoder caches for ``seq_len`` positions.

    Per layer and position: 2 (K and V) · ``num_kv_heads`` · ``head_dim`` numbers — so GQA with
    ``num_kv_heads = num_heads / g`` caches ``g`` times less than MHA. An encoder-decoder's decoder also
    caches the encoder output's keys and values for cross-attention: pass its length as ``context_len``.

    Raises:
        ValueError: For an encoder-only config (BERT decodes nothing), or a negative length.
    """
    if not format_of(config).generates:
        raise ValueError(f"{type(config).__name__} is encoder-only: it has no KV cache")
    if seq_len < 0 or context_len < 0 or batch_size < 1:
        raise ValueError(f"seq_len={seq_len}, context_len={context_len} must be >= 0, batch_size={batch_size} >= 1")
    num_layers = getattr(config, "num_decoder_layers", None) or config.num_layers
    per_position = 2 * config.resolved_num_kv_heads * config.resolved_head_dim * dtype.itemsize
    return num_layers * batch_size * per_position * (seq_len + context_len)


def cache_nbytes(cache: StackCache) -> int:
    """Bytes of the keys and values a filled ``StackCache`` holds (its filled part, not spare capacity)."""
    total = 0
    for layer in cache.layers:
        for kv in (layer.self_attn, layer.cross_attn):
            if kv.k is not None:
                total += kv.k.nbytes + kv.v.nbytes
    return total
