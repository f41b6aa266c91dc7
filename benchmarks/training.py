"""Training speed: a zoo model's forward + backward + AdamW step against the same shape in other
libraries — ``transformers`` on the same weights (``zoo.hf.to_hf``), ``x-transformers`` and litgpt at the
same shapes (``benchmarks/peers.py``; parameter counts printed) — same batches, same optimizer, same
process.

Every family × {fp32, bf16-mixed} × {eager, compiled} × sequence {128, 512}. A *cell* is (family,
precision, sequence); within a cell every setting (implementation × eager / compiled) runs in
alternating rounds, so load from other processes hits them alike, and each setting's time is the
median over ``--repeats`` rounds of ``--steps`` steps. bf16-mixed is what Lightning's
``precision="bf16-mixed"`` does: float32 weights and optimizer, ``torch.autocast(bfloat16)`` around
forward and loss. "compiled" is what ``--compile.enabled true`` does for the zoo
(``zoo.speed.compile_model`` on the stacks, then the whole step — model, output head and loss — under
``torch.compile``, as ``CompileModel`` compiles a task's ``forward_loss``), ``model.compile()`` for
transformers (its forward, loss included), and the whole step under ``torch.compile`` for the other
peers. Each side computes its loss its own way: the zoo with ``zoo.tasks.losses.token_cross_entropy``
(what its tasks use), transformers with its ``labels=`` loss, x-transformers and litgpt with
``F.cross_entropy`` on their logits. BERT cells score every position (transformers' ``labels=ids``),
so the zoo's step there is one graph; its masked-LM task scores the masked ones only. All run under
the allocator setting every ``zoo`` command makes (``zoo.speed.reuse_freed_memory``: glibc's malloc
keeps freed memory instead of faulting it in again each step); it sped transformers up more than the
zoo (``--system-malloc`` leaves glibc as it is, for the comparison without it).

Reported per cell: tokens/s of each setting, the best zoo setting over each peer's best, MFU of every
implementation's best setting (model FLOPs from ``zoo.flops`` over the machine's matmul peak in the
cell's precision: the fastest square matmul measured at start-up and again after each cell), the
tensor memory one step allocates above what was live before it (activations, gradients,
temporaries; torch.profiler's allocator events), and the difference of the first losses of the zoo
and transformers (same weights, same batch: ~0). Then every model's parameter count, and one line
per peer:

    zoo/transformers: min X.XX× median Y.YY× bf16 median Z.ZZ×
    zoo/x-transformers: ...
    zoo/litgpt: ...

over all cells the peer ran (min, median) and over its bf16 cells. litgpt has no encoder: it runs the
GPT-2 and LLaMA cells only.

    python benchmarks/training.py                 # the full matrix: 16 cells × 4 libraries
    python benchmarks/training.py --quick         # seq 128, 2 layers, eager only
    python benchmarks/training.py --families gpt2 --precisions bf16 --seq-lens 512 --peers transformers
    python benchmarks/training.py --families bert --precisions fp32 --seq-lens 512 --profile 15
                                                  # + where each side's step goes (torch.profiler)
    python benchmarks/training.py --widths 256 512 1024 --ceiling --families gpt2 llama --seq-lens 512
                                                  # MFU against width, beside the matmul ceiling

``--widths`` runs the matrix at each width (heads keep the head width of ``--hidden``/``--heads``, 64).
``--ceiling`` adds the *matmul ceiling*: every matrix product one eager zoo step runs (recorded with a
dispatch mode, backward included), each timed alone on random inputs of its shape and dtype, as FLOP/s
over the square-matmul peak timed between them — the MFU of a step that did nothing but its matmuls.
No implementation of the step gets above it (attention inside SDPA kernels is the one product it
does not see).

Needs ``transformers`` and ``x-transformers`` (``pip install -e ".[bench]"``) and litgpt (``pip install
--no-deps litgpt``: its own pins break transformers 5); a peer that is not installed is skipped with
a line saying so. Nothing is downloaded.
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

import peers
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from zoo.flops import forward_flops
from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config
from zoo.speed import _cpu_name, compile_model, measure_matmul_peak, reuse_freed_memory
from zoo.tasks.losses import token_cross_entropy

FAMILIES = ("gpt2", "llama", "bert", "t5")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
MODES = ("eager", "compiled")


def build(family: str, args: argparse.Namespace, seq_len: int) -> torch.nn.Module:
    size = dict(vocab_size=args.vocab_size, embed_dim=args.hidden, num_layers=args.layers, num_heads=args.heads,
                max_seq_len=seq_len, dropout=0.0)
    if family == "gpt2":
        return GPT(GPTConfig(**size, activation="gelu_tanh"))
    if family == "llama":
        return GPT(GPTConfig.llama(**size, num_kv_heads=max(1, args.heads // 2)))
    if family == "bert":
        return BERT(BertConfig(**size, type_vocab_size=2))
    return T5(T5Config(**size))


def batch(family: str, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(labels, decoder_ids)`` for ``ids``: next-token labels for a decoder (the labels shifted, not
    the logits: slicing logits would copy them, and transformers shifts labels too), every position
    for BERT (as transformers' ``labels=ids``), and for T5 the decoder fed ``ids`` shifted right."""
    if family == "t5":
        return ids, torch.cat((torch.zeros_like(ids[:, :1]), ids[:, :-1]), dim=1)
    if family == "bert":
        return ids, None
    return torch.cat((ids[:, 1:], torch.full_like(ids[:, :1], -100)), dim=1), None


def zoo_loss(family: str, model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The zoo's step loss: logits, then ``token_cross_entropy`` (what its tasks' ``forward_loss`` do)."""
    labels, decoder_ids = batch(family, ids)
    if family == "t5":
        return lambda: token_cross_entropy(model(ids, decoder_ids).flatten(0, 1), labels.flatten())
    return lambda: token_cross_entropy(model(ids).flatten(0, 1), labels.flatten())


def hf_loss(family: str, model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], torch.Tensor]:
    """transformers' step loss, its own way: ``labels=`` (it shifts a causal LM's labels itself)."""
    _, decoder_ids = batch(family, ids)
    if family == "t5":
        return lambda: model(input_ids=ids, decoder_input_ids=decoder_ids, labels=ids).loss
    return lambda: model(input_ids=ids, labels=ids).loss


def step_loss(implementation: str, family: str, model: torch.nn.Module, ids: torch.Tensor, mode: str
              ) -> Callable[[], torch.Tensor]:
    """One implementation's loss on ``ids``, compiled in the ``compiled`` mode the way its users
    compile: the zoo as ``--compile.enabled`` does (stacks, then the whole step — model, head and
    loss — as one function), transformers with ``model.compile()`` (its forward, loss included), the
    other peers with the whole step under ``torch.compile`` (the best case for them)."""
    if implementation == "zoo":
        loss = zoo_loss(family, model, ids)
        if mode == "compiled":
            compile_model(model, dynamic=False)
            loss = torch.compile(loss, dynamic=False)
        return loss
    if implementation == "transformers":
        if mode == "compiled":
            model.compile(dynamic=False)
        return hf_loss(family, model, ids)
    labels, decoder_ids = batch(family, ids)
    loss = peers.loss(implementation, family, model, ids, labels, decoder_ids)
    return torch.compile(loss, dynamic=False) if mode == "compiled" else loss


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


def profile_step(setting: Setting, dtype: torch.dtype, top: int) -> list[str]:
    """The ``top`` ATen ops of one step by self CPU time (torch.profiler): where a setting's time
    goes, to say why one implementation beats another in a cell."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_steps(setting, 1, dtype)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [f"      {e.self_cpu_time_total / 1e3:8.1f} ms {100 * e.self_cpu_time_total / total:5.1f} %  "
            f"{e.count:5d}×  {e.key}" for e in events[:top]]


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


def build_models(family: str, args: argparse.Namespace, seq_len: int) -> dict[str, torch.nn.Module]:
    """The zoo model and each peer's at its shape (transformers on the same weights), train mode."""
    torch.manual_seed(0)
    zoo = build(family, args, seq_len).train()
    models = {"zoo": zoo}
    for peer in args.peers:
        if peer == "transformers":
            from zoo.hf import to_hf

            models[peer] = to_hf(zoo).train()
            models[peer].config.use_cache = False
            continue
        torch.manual_seed(0)
        model = peers.build(peer, family, zoo.config, seq_len)
        if model is not None:
            models[peer] = model.train()
    return models


def run_cell(family: str, precision: str, seq_len: int, args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    dtype = PRECISIONS[precision]
    batch_size = max(1, args.batch_tokens // seq_len)
    # Each cell compiles fresh models: without a reset, dynamo's per-function cache (8 entries) fills
    # after a few cells and later "compiled" settings silently run eager.
    torch._dynamo.reset()
    models = build_models(family, args, seq_len)
    zoo = models["zoo"]
    ids = torch.randint(10, args.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else nullcontext()
    loss_diff = None
    if "transformers" in models:  # same weights, same batch: the first losses agree
        with torch.no_grad(), autocast:
            loss_diff = abs(float(zoo_loss(family, zoo, ids)()) - float(hf_loss(family, models["transformers"], ids)()))

    settings = []
    for mode in args.modes:
        for implementation, model in models.items():
            if mode == "compiled":
                model = copy.deepcopy(model)
            loss = step_loss(implementation, family, model, ids, mode)
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

    speeds = {s.name: statistics.median(s.times) for s in settings}
    if args.profile:
        for implementation in models:
            fastest = min((s for s in settings if s.implementation == implementation), key=lambda s: speeds[s.name])
            print(f"    profile of one {fastest.name} step ({family} {precision} {seq_len}), top ops by self time:")
            print("\n".join(profile_step(fastest, dtype, args.profile)), flush=True)

    eager_zoo = next(s for s in settings if s.implementation == "zoo" and s.mode == "eager")
    ceiling = matmul_ceiling(eager_zoo, dtype) if args.ceiling else None
    tokens = batch_size * seq_len * args.steps
    target = seq_len if family == "t5" else None
    step_flops = 3 * forward_flops(zoo.config, batch_size, seq_len, target_len=target)
    speed = {s.name: tokens / statistics.median(s.times) for s in settings}
    best = {impl: max((s for s in settings if s.implementation == impl), key=lambda s: speed[s.name])
            for impl in models}
    # The peak is a property of the machine: other processes only ever lower a measurement of it, so
    # each cell measures again and MFU is taken against the highest rate seen in the whole run.
    peaks[precision] = max(peaks[precision], measure_matmul_peak(dtype, seconds=0.5))
    flops_per_sec = {impl: step_flops * speed[best[impl].name] / (batch_size * seq_len) for impl in models}
    return {"family": family, "precision": precision, "seq_len": seq_len, "batch_size": batch_size,
            "width": args.hidden, "speed": speed, "best": {impl: best[impl].name for impl in models},
            "ratio": {peer: speed[best["zoo"].name] / speed[best[peer].name] for peer in models if peer != "zoo"},
            "flops_per_sec": flops_per_sec, "memory": {impl: best[impl].memory for impl in models},
            "params": {impl: peers.num_parameters(model) for impl, model in models.items()},
            "loss_diff": loss_diff, "ceiling": ceiling}


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def summary_lines(rows: list[dict], peer_names: list[str]) -> list[str]:
    """``zoo/<peer>: min X.XX× median Y.YY× bf16 median Z.ZZ×`` per peer, over the cells the peer ran
    (n/a where none has it)."""

    def fmt(values: list[float], fn: Callable[[list[float]], float]) -> str:
        return f"{fn(values):.2f}×" if values else "n/a"

    lines = []
    for peer in peer_names:
        ratios = [r["ratio"][peer] for r in rows if peer in r["ratio"]]
        if not ratios:
            continue
        bf16 = [r["ratio"][peer] for r in rows if peer in r["ratio"] and r["precision"] == "bf16"]
        lines.append(f"zoo/{peer}: min {fmt(ratios, min)} median {fmt(ratios, statistics.median)} "
                     f"bf16 median {fmt(bf16, statistics.median)}")
    return lines


def table(rows: list[dict], modes: list[str], peaks: dict[str, float], peer_names: list[str]) -> list[str]:
    """The results as a markdown table; a width column when the run had several widths."""
    implementations = ["zoo", *(p for p in peer_names if any(p in r["ratio"] for r in rows))]
    ratio_peers = implementations[1:]
    settings = [f"{impl} {mode}" for impl in implementations for mode in modes]
    widths = len({r["width"] for r in rows}) > 1
    ceiling = any(r["ceiling"] for r in rows)
    joined = " / ".join(implementations)
    head = ["family", *(["width"] if widths else []), "precision", "seq × batch", *(f"{s} tok/s" for s in settings),
            *(f"zoo / {p}" for p in ratio_peers), f"MFU {joined}", *(["matmul ceiling"] if ceiling else []),
            f"step MiB {joined}", "first-loss Δ (transformers)"]
    lead = 4 if widths else 3
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * lead + "---:|" * (len(head) - lead)]

    def mib(value: float | None) -> str:
        return f"{value / 2**20:.0f}" if value is not None else "–"

    for r in rows:
        cells = [r["family"], *([str(r["width"])] if widths else []), r["precision"],
                 f"{r['seq_len']} × {r['batch_size']}"]
        for s in settings:
            if s not in r["speed"]:
                cells.append("–")
                continue
            mark = "**" if s in r["best"].values() else ""
            cells.append(f"{mark}{r['speed'][s]:.0f}{mark}")
        cells += [f"{r['ratio'][p]:.2f}×" if p in r["ratio"] else "–" for p in ratio_peers]
        mfu = [f"{100 * r['flops_per_sec'][i] / peaks[r['precision']]:.0f}" if i in r["flops_per_sec"] else "–"
               for i in implementations]
        cells.append(" / ".join(mfu) + " %")
        if ceiling:
            cells.append(f"{100 * r['ceiling']:.0f} %" if r["ceiling"] else "–")
        cells.append(" / ".join(mib(r["memory"].get(i)) for i in implementations))
        cells.append(f"{r['loss_diff']:.1e}" if r["loss_diff"] is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def params_table(rows: list[dict], peer_names: list[str]) -> list[str]:
    """Parameter counts (tied weights once) of every model the run built, per family and width."""
    implementations = ["zoo", *peer_names]
    lines = ["| family | width | " + " | ".join(implementations) + " |", "|---|---:|" + "---:|" * len(implementations)]
    seen = set()
    for r in rows:
        key = (r["family"], r["width"])
        if key in seen:
            continue
        seen.add(key)
        counts = [f"{r['params'][i] / 1e6:.3f}M" if i in r["params"] else "–" for i in implementations]
        lines.append(f"| {r['family']} | {r['width']} | " + " | ".join(counts) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--modes", nargs="+", default=None, choices=MODES, help="default: both (--quick: eager)")
    parser.add_argument("--peers", nargs="+", default=list(peers.PEERS), choices=peers.PEERS,
                        help="libraries to time against (default: every one installed)")
    parser.add_argument("--seq-lens", nargs="+", type=int, default=None, help="default: 128 512 (--quick: 128)")
    parser.add_argument("--layers", type=int, default=None, help="default: 4 (--quick: 2)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--widths", nargs="+", type=int, default=None, help="run the whole matrix at each width, "
                        "heads keeping the head width of --hidden/--heads (64): MFU against width")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--batch-tokens", type=int, default=1024, help="tokens per batch (batch = this / seq len)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed round (default 3; --quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per setting (default 5; --quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per setting first (compilation)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the profiled memory step")
    parser.add_argument("--ceiling", action="store_true", help="add the matmul ceiling: the MFU of the step's own "
                        "matmuls, each timed alone (an upper bound on what any implementation of the step reaches)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest ops of one step "
                        "of every implementation's fastest setting in each cell (torch.profiler)")
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc as it is (the zoo command "
                        "sets zoo.speed.reuse_freed_memory, and so does this benchmark by default, for every side)")
    parser.add_argument("--quick", action="store_true", help="a fast pass: seq 128, 2 layers, eager, fewer rounds")
    args = parser.parse_args()
    quick = args.quick
    args.modes = args.modes or (["eager"] if quick else list(MODES))
    args.seq_lens = args.seq_lens or ([128] if quick else [128, 512])
    args.layers = args.layers or (2 if quick else 4)
    args.steps = args.steps or (2 if quick else 3)
    args.repeats = args.repeats or (3 if quick else 5)
    head_dim = args.hidden // args.heads
    widths = args.widths or [args.hidden]
    if any(w % head_dim for w in widths):
        parser.error(f"--widths {widths}: each must be a multiple of the head width {head_dim} (--hidden/--heads)")
    for peer in list(args.peers):
        reason = peers.missing(peer)
        if reason:
            print(f"skipping {reason}")
            args.peers.remove(peer)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = "glibc default" if args.system_malloc or not reuse_freed_memory() else "freed memory reused"
    if "transformers" in args.peers:
        from transformers.utils import logging

        logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)

    peaks = {p: measure_matmul_peak(PRECISIONS[p], seconds=1.0) for p in args.precisions}
    print(f"forward + backward + AdamW (fused), {args.batch_tokens} tokens per batch; {args.layers} layers, width "
          f"{' '.join(map(str, widths))} (head width {head_dim}), vocab {args.vocab_size}; peers "
          f"{', '.join(f'{p} {peers.version(p)}' for p in args.peers) or 'none'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads of {_cpu_name()} ({torch.backends.cpu.get_cpu_capability()}); "
          f"malloc: {malloc}; median of {args.repeats} rounds × {args.steps} steps; "
          f"load average {_load()}", flush=True)
    rows = []
    for width in widths:
        args.hidden, args.heads = width, width // head_dim
        for family in args.families:
            for precision in args.precisions:
                for seq_len in args.seq_lens:
                    rows.append(run_cell(family, precision, seq_len, args, peaks))
                    r = rows[-1]
                    print(f"  {family} {width} {precision} {seq_len}: "
                          + ", ".join(f"{k} {v:.0f}" for k, v in r["speed"].items()) + " tok/s -> "
                          + ", ".join(f"{v:.2f}× {k}" for k, v in r["ratio"].items()), flush=True)
    print("\nMFU against the highest matmul rate measured during the run: "
          + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items()) + f"; load average {_load()}\n")
    print("\n".join(table(rows, args.modes, peaks, args.peers)))
    print()
    print("\n".join(params_table(rows, args.peers)))
    print()
    print("\n".join(summary_lines(rows, args.peers)))


if __name__ == "__main__":
    main()
