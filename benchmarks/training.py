"""Training speed: a zoo model's forward + backward + AdamW step against the same model in
``transformers`` — same weights (``zoo.hf.to_hf``), same batches, same optimizer, same process.

Every family × {fp32, bf16-mixed} × {eager, compiled} × sequence {128, 512}. A *cell* is (family,
precision, sequence); within a cell the four settings (zoo / transformers × eager / compiled) run in
alternating rounds, so load from other processes hits them alike, and each setting's time is the
median over ``--repeats`` rounds of ``--steps`` steps. bf16-mixed is what Lightning's
``precision="bf16-mixed"`` does: float32 weights and optimizer, ``torch.autocast(bfloat16)`` around
forward and loss. "compiled" is what ``--compile.enabled true`` does for the zoo
(``zoo.speed.compile_model`` on the stacks, and the loss compiled) and ``model.compile()`` for
transformers (its forward, loss included). Each side computes its loss its own way: the zoo with
``zoo.tasks.losses.token_cross_entropy`` (what its tasks use), transformers with its ``labels=`` loss.
Both run under the allocator setting every ``zoo`` command makes (``zoo.speed.reuse_freed_memory``:
glibc's malloc keeps freed memory instead of faulting it in again each step); it sped transformers
up more than the zoo (``--system-malloc`` leaves glibc as it is, for the comparison without it).

Reported per cell: tokens/s of each setting, the best zoo setting over the best transformers one,
MFU of both best settings (model FLOPs from ``zoo.flops`` over the machine's matmul peak in the
cell's precision: the fastest square matmul measured at start-up and again after each cell), the
tensor memory one step allocates above what was live before it (activations, gradients,
temporaries; torch.profiler's allocator events), and the difference of the first losses (same
weights, same batch: ~0). The last line is

    zoo/transformers: min X.XX× median Y.YY× bf16 median Z.ZZ×

over all cells (min, median) and over the bf16 cells.

    python benchmarks/training.py                 # the full matrix: 16 cells, ~40 min on 2 CPU cores
    python benchmarks/training.py --quick         # seq 128, 2 layers, eager only: ~2 min
    python benchmarks/training.py --families gpt2 --precisions bf16 --seq-lens 512
    python benchmarks/training.py --ceiling --hidden 512 --heads 8   # + the matmul ceiling column, width 512

``--ceiling`` adds the *matmul ceiling*: every matrix product one eager zoo step runs (recorded with a
dispatch mode, backward included), each timed alone on random inputs of its shape and dtype, as FLOP/s
over the square-matmul peak timed between them — the MFU of a step that did nothing but its matmuls.
No implementation of the step gets above it (attention inside SDPA kernels is the one product it
does not see).

Needs ``transformers`` (``pip install -e ".[hf]"``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from zoo.flops import forward_flops
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.speed import compile_model, measure_matmul_peak, reuse_freed_memory
from zoo.tasks.losses import compiled_token_cross_entropy, token_cross_entropy

FAMILIES = ("gpt2", "llama", "bert", "t5")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
MODES = ("eager", "compiled")
IMPLEMENTATIONS = ("zoo", "transformers")


def build(family: str, args: argparse.Namespace, seq_len: int) -> torch.nn.Module:
    size = dict(vocab_size=args.vocab_size, embed_dim=args.hidden, num_layers=args.layers, num_heads=args.heads,
                max_seq_len=seq_len, dropout=0.0)
    if family == "gpt2":
        return GPT(GPTConfig(**size, activation="gelu_tanh"))
    if family == "llama":
        return GPT(GPTConfig.llama(**size, num_kv_heads=args.heads // 2))
    if family == "bert":
        return BERT(BertConfig(**size, type_vocab_size=2))
    return T5(T5Config(**size))


def loss_fns(family: str, zoo: torch.nn.Module, hf: torch.nn.Module, ids: torch.Tensor,
             cross_entropy: Callable[..., torch.Tensor] = token_cross_entropy,
             ) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """``(zoo_loss, hf_loss)``: the same loss on ``ids``, each computed the implementation's own way
    (the zoo's with ``cross_entropy``: ``token_cross_entropy``, compiled in the compiled setting as
    ``CompileModel`` does)."""
    if family == "t5":
        dec = torch.cat((torch.zeros_like(ids[:, :1]), ids[:, :-1]), dim=1)
        return (lambda: cross_entropy(zoo(ids, dec).flatten(0, 1), ids.flatten()),
                lambda: hf(input_ids=ids, decoder_input_ids=dec, labels=ids).loss)
    if family == "bert":
        return (lambda: cross_entropy(zoo(ids).flatten(0, 1), ids.flatten()),
                lambda: hf(input_ids=ids, labels=ids).loss)
    # Next-token: shift the labels, not the logits (slicing logits would copy them), as transformers does.
    shifted = torch.cat((ids[:, 1:], torch.full_like(ids[:, :1], -100)), dim=1)
    return (lambda: cross_entropy(zoo(ids).flatten(0, 1), shifted.flatten()),
            lambda: hf(input_ids=ids, labels=ids).loss)


@dataclass
class Setting:
    """One implementation × mode of a cell, with its own model copy and optimizer."""

    implementation: str
    mode: str
    model: torch.nn.Module
    loss: Callable[[], torch.Tensor]
    optimizer: torch.optim.Optimizer
    times: list[float] = field(default_factory=list)
    memory: float | None = None

    @property
    def name(self) -> str:
        return f"{self.implementation} {self.mode}"


def train_steps(setting: Setting, steps: int, dtype: torch.dtype) -> float:
    autocast = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else nullcontext()
    start = time.perf_counter()
    for _ in range(steps):
        setting.optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = setting.loss()
        loss.backward()
        setting.optimizer.step()
    return time.perf_counter() - start


def step_memory(setting: Setting, dtype: torch.dtype) -> float | None:
    """Peak bytes of tensors one step allocates above those live before it, from the allocator
    events torch.profiler records (compiled kernels allocate through the same allocator)."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            train_steps(setting, 1, dtype)
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]")
    except (AttributeError, RuntimeError):  # the profiler's result API is not public; report nothing
        return None
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return float(peak)


class _RecordMatmuls(TorchDispatchMode):
    """Records the shapes and dtype of every matrix product the step runs (mm, addmm, bmm)."""

    OPS = {torch.ops.aten.mm.default: "mm", torch.ops.aten.addmm.default: "addmm", torch.ops.aten.bmm.default: "bmm"}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.OPS:
            a, b = (args[1], args[2]) if func is torch.ops.aten.addmm.default else (args[0], args[1])
            self.calls.append((self.OPS[func], tuple(a.shape), tuple(b.shape), a.dtype))
        return func(*args, **(kwargs or {}))


def matmul_ceiling(setting: Setting, dtype: torch.dtype, repeats: int = 5) -> float:
    """The eager step's own matrix products, each timed alone (best of ``repeats``), as a share of
    the matmul peak — the MFU of a step that did nothing but its matmuls: an upper bound on any
    implementation's. The peak (``measure_matmul_peak``) is timed interleaved with them, so a machine
    whose speed drifts (a shared one) moves both alike."""
    recorder = _RecordMatmuls()
    with recorder:
        train_steps(setting, 1, dtype)

    def best_time(fn: Callable[[], object]) -> float:
        fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    flops = seconds = 0.0
    peak = 0.0
    for index, (kind, a_shape, b_shape, matmul_dtype) in enumerate(recorder.calls):
        a, b = torch.randn(a_shape, dtype=matmul_dtype), torch.randn(b_shape, dtype=matmul_dtype)
        seconds += best_time(lambda a=a, b=b, fn=torch.bmm if kind == "bmm" else torch.mm: fn(a, b))
        flops += 2 * a.numel() * b_shape[-1]
        if index % 8 == 0:  # the peak, between the shapes
            peak = max(peak, measure_matmul_peak(dtype, seconds=0.1))
    return flops / seconds / peak if seconds and peak else 0.0


def run_cell(family: str, precision: str, seq_len: int, args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    from zoo.hf import to_hf

    dtype = PRECISIONS[precision]
    batch_size = max(1, args.batch_tokens // seq_len)
    # Each cell compiles fresh models: without a reset, dynamo's per-function cache (8 entries) fills
    # after a few cells and later "compiled" settings silently run eager.
    torch._dynamo.reset()
    torch.manual_seed(0)
    zoo = build(family, args, seq_len).train()
    hf = to_hf(zoo).train()
    hf.config.use_cache = False
    ids = torch.randint(10, args.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else nullcontext()
    zoo_loss, hf_loss = loss_fns(family, zoo, hf, ids)
    with torch.no_grad(), autocast:
        loss_diff = abs(float(zoo_loss()) - float(hf_loss()))

    settings = []
    for mode in args.modes:
        for implementation, model in (("zoo", zoo), ("transformers", hf)):
            if mode == "compiled":
                model = copy.deepcopy(model)
                if implementation == "zoo":
                    compile_model(model, dynamic=False)
                else:
                    model.compile(dynamic=False)
            zoo_ce = compiled_token_cross_entropy() if mode == "compiled" else token_cross_entropy
            pair = loss_fns(family, model if implementation == "zoo" else zoo,
                            model if implementation == "transformers" else hf, ids, zoo_ce)
            loss = pair[0] if implementation == "zoo" else pair[1]
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            settings.append(Setting(implementation, mode, model, loss, optimizer))

    for setting in settings:  # warm-up: compilation, allocator, caches
        train_steps(setting, args.warmup, dtype)
    for round_index in range(args.repeats):
        # Rotate the order each round, so no setting always follows the same one.
        shift = round_index % len(settings)
        for setting in settings[shift:] + settings[:shift]:
            setting.times.append(train_steps(setting, args.steps, dtype))
    if not args.no_memory:
        for setting in settings:
            setting.memory = step_memory(setting, dtype)

    eager_zoo = next(s for s in settings if s.implementation == "zoo" and s.mode == "eager")
    ceiling = matmul_ceiling(eager_zoo, dtype) if args.ceiling else None
    tokens = batch_size * seq_len * args.steps
    target = seq_len if family == "t5" else None
    step_flops = 3 * forward_flops(zoo.config, batch_size, seq_len, target_len=target)
    speed = {s.name: tokens / statistics.median(s.times) for s in settings}
    best = {impl: max((s for s in settings if s.implementation == impl), key=lambda s: speed[s.name])
            for impl in IMPLEMENTATIONS}
    # The peak is a property of the machine: other processes only ever lower a measurement of it, so
    # each cell measures again and MFU is taken against the highest rate seen in the whole run.
    peaks[precision] = max(peaks[precision], measure_matmul_peak(dtype, seconds=0.5))
    flops_per_sec = {impl: step_flops * speed[best[impl].name] / (batch_size * seq_len) for impl in IMPLEMENTATIONS}
    return {"family": family, "precision": precision, "seq_len": seq_len, "batch_size": batch_size,
            "speed": speed, "best": {impl: best[impl].name for impl in IMPLEMENTATIONS},
            "ratio": speed[best["zoo"].name] / speed[best["transformers"].name], "flops_per_sec": flops_per_sec,
            "memory": {impl: best[impl].memory for impl in IMPLEMENTATIONS}, "loss_diff": loss_diff,
            "ceiling": ceiling}


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def summary_line(rows: list[dict]) -> str:
    """``zoo/transformers: min X.XX× median Y.YY× bf16 median Z.ZZ×`` (n/a where no cell has it)."""
    ratios = [r["ratio"] for r in rows]
    bf16 = [r["ratio"] for r in rows if r["precision"] == "bf16"]

    def fmt(values: list[float], fn: Callable[[list[float]], float]) -> str:
        return f"{fn(values):.2f}×" if values else "n/a"

    return (f"zoo/transformers: min {fmt(ratios, min)} median {fmt(ratios, statistics.median)} "
            f"bf16 median {fmt(bf16, statistics.median)}")


def table(rows: list[dict], modes: list[str], peaks: dict[str, float]) -> list[str]:
    settings = [f"{impl} {mode}" for impl in IMPLEMENTATIONS for mode in modes]
    head = ["family", "precision", "seq × batch", *(f"{s} tok/s" for s in settings), "zoo / transformers",
            "MFU zoo", "MFU transformers", *(["matmul ceiling"] if any(r["ceiling"] for r in rows) else []),
            "step MiB zoo / transformers", "first-loss Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]

    def mib(value: float | None) -> str:
        return f"{value / 2**20:.0f}" if value is not None else "–"

    for r in rows:
        cells = [r["family"], r["precision"], f"{r['seq_len']} × {r['batch_size']}"]
        for s in settings:
            mark = "**" if s in r["best"].values() else ""
            cells.append(f"{mark}{r['speed'][s]:.0f}{mark}")
        mfu = {impl: 100 * r["flops_per_sec"][impl] / peaks[r["precision"]] for impl in IMPLEMENTATIONS}
        cells += [f"{r['ratio']:.2f}×", f"{mfu['zoo']:.0f} %", f"{mfu['transformers']:.0f} %"]
        if any(row["ceiling"] for row in rows):
            cells.append(f"{100 * r['ceiling']:.0f} %" if r["ceiling"] else "–")
        cells += [f"{mib(r['memory']['zoo'])} / {mib(r['memory']['transformers'])}", f"{r['loss_diff']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--modes", nargs="+", default=None, choices=MODES, help="default: both (--quick: eager)")
    parser.add_argument("--seq-lens", nargs="+", type=int, default=None, help="default: 128 512 (--quick: 128)")
    parser.add_argument("--layers", type=int, default=None, help="default: 4 (--quick: 2)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--batch-tokens", type=int, default=1024, help="tokens per batch (batch = this / seq len)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed round (default 3; --quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per setting (default 5; --quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per setting first (compilation)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the profiled memory step")
    parser.add_argument("--ceiling", action="store_true", help="add the matmul ceiling: the MFU of the step's own "
                        "matmuls, each timed alone (an upper bound on what any implementation of the step reaches)")
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc as it is (the zoo command "
                        "sets zoo.speed.reuse_freed_memory, and so does this benchmark by default, for both sides)")
    parser.add_argument("--quick", action="store_true", help="a fast pass: seq 128, 2 layers, eager, fewer rounds")
    args = parser.parse_args()
    quick = args.quick
    args.modes = args.modes or (["eager"] if quick else list(MODES))
    args.seq_lens = args.seq_lens or ([128] if quick else [128, 512])
    args.layers = args.layers or (2 if quick else 4)
    args.steps = args.steps or (2 if quick else 3)
    args.repeats = args.repeats or (3 if quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = "glibc default" if args.system_malloc or not reuse_freed_memory() else "freed memory reused"
    from transformers.utils import logging

    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)

    peaks = {p: measure_matmul_peak(PRECISIONS[p], seconds=1.0) for p in args.precisions}
    print(f"forward + backward + AdamW (fused), {args.batch_tokens} tokens per batch; {args.layers} layers, width "
          f"{args.hidden}, {args.heads} heads, vocab {args.vocab_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; malloc: {malloc}; median of {args.repeats} rounds × {args.steps} steps; "
          f"load average {_load()}", flush=True)
    rows = []
    for family in args.families:
        for precision in args.precisions:
            for seq_len in args.seq_lens:
                rows.append(run_cell(family, precision, seq_len, args, peaks))
                r = rows[-1]
                print(f"  {family} {precision} {seq_len}: " + ", ".join(f"{k} {v:.0f}" for k, v in r["speed"].items())
                      + f" tok/s -> {r['ratio']:.2f}×", flush=True)
    print("\nMFU against the highest matmul rate measured during the run: "
          + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items()) + f"; load average {_load()}\n")
    print("\n".join(table(rows, args.modes, peaks)))
    print()
    print(summary_line(rows))


if __name__ == "__main__":
    main()
