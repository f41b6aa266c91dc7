"""Biased and masked attention at sequence 512 and 1024: the dense path against FlexAttention, and
training steps of biased models now against the zoo before this work.

Two tables, each setting timed in alternating rounds in one process (median):

1. **Inference forward** (``torch.no_grad``, the path FlexAttention takes on a CPU) of a 4-layer
   GPT-shaped model for ALiBi, T5's relative bias, a document mask over packed sequences, and
   causal + left padding: ``attn_implementation="sdpa"`` (the bias or mask folded into one dense
   ``(b, h, t, s)`` tensor) against ``"flex"`` (score_mod / block_mask, compiled kernel), with the
   bytes of what each path hands its layers.
2. **Training step** (forward + backward + AdamW, bf16-mixed and fp32) of an ALiBi GPT and a T5
   model: "before" is the zoo's step as it was — its model code from git (``--before``, imported as
   ``zoo_before``), a float32 copy of the logits for the loss, torchmetrics perplexity and accuracy
   on every training step, for-loop AdamW; "eager"
   and "compiled" are the step now (``token_cross_entropy``, fused AdamW, loss-only training logs;
   ``--compile.enabled true`` adds ``compile_model`` and the whole step compiled). On a CPU training keeps
   the dense bias, since this torch has no FlexAttention backward there; on a GPU it takes FlexAttention.

3. **Training attention** (forward + backward of the attention op alone, causal and bidirectional, bf16, 4 heads of
   64, 1024 tokens): the CPU flash kernel (``F.scaled_dot_product_attention``, what eager runs)
   against what a compiled model runs (``zoo.blocks.sdpa``: the flash forward with a block-wise
   backward that inductor fuses, from 192 to 512 keys), with the largest gradient difference.

    python benchmarks/attention.py              # all tables, seq 512 and 1024 (~15 min on 2 CPU cores)
    python benchmarks/attention.py --quick      # seq 512, fewer rounds
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from zoo.blocks.flex import document_ids, flex_available, stack_flex_masks
from zoo.blocks.sdpa import sdpa_attention
from zoo.models import GPT, T5, GPTConfig, T5Config
from zoo.speed import compile_model
from zoo.tasks.losses import token_cross_entropy

# The zoo as issue 13 found it: the last commit before the speed work (compile, losses, FlexAttention).
BEFORE = "f4ea021"
SIZE = dict(vocab_size=8192, embed_dim=256, num_layers=4, num_heads=4, dropout=0.0)


def timed_rounds(fns: dict[str, Callable[[], object]], repeats: int, steps: int) -> dict[str, float]:
    """Median seconds per call of each function, rounds alternating (and rotating their order)."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(steps):
                fns[name]()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


# ---------------------------------------------------------------------------------------------
# Inference: dense mask vs FlexAttention


def inference_case(scheme: str, seq_len: int, batch: int) -> tuple[dict, dict]:
    """``(kwargs for GPTConfig, inputs for forward)`` of one masking scheme."""
    ids = torch.randint(4, 8192, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    if scheme == "alibi":
        return {"position": "alibi"}, {"input_ids": ids}
    if scheme == "t5 bias":
        return {"position": "relative"}, {"input_ids": ids}
    if scheme == "documents":
        ids[:, 100::150] = 3  # eos every 150 tokens: packed documents
        return {"position": "rotary"}, {"input_ids": ids, "document_ids": document_ids(ids, 3)}
    mask = torch.ones(batch, seq_len, dtype=torch.bool)
    mask[0, : seq_len // 4] = False  # left padding
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return {"position": "learned"}, {"input_ids": ids, "attention_mask": mask, "position_ids": positions}


def mask_bytes(model: GPT, inputs: dict) -> int:
    """Bytes of what the stack hands its layers: the dense float/bool tensor, or the block mask."""
    stack, ids = model.decoder, inputs["input_ids"]
    t = ids.shape[1]
    with torch.no_grad():
        masks = stack_flex_masks(stack, t, t, ids.device, attention_mask=inputs.get("attention_mask"),
                                 position_ids=inputs.get("position_ids"), key_positions=inputs.get("position_ids"),
                                 document_ids=inputs.get("document_ids"), cached=False)
    if masks is not None:
        block_mask = next(iter(masks.values()))[0].block_mask
        tensors = [] if block_mask is None else [x for x in block_mask.as_tuple() if isinstance(x, torch.Tensor)]
        return sum(x.numel() * x.element_size() for x in tensors)
    b, h = ids.shape[0], model.config.num_heads
    bias = model.config.position in ("alibi", "relative")
    per_head = h if bias else 1
    rows = b if (inputs.get("attention_mask") is not None or inputs.get("document_ids") is not None) else 1
    return rows * per_head * t * t * (4 if bias else 1)


def forward_of(model: GPT, inputs: dict) -> Callable[[], torch.Tensor]:
    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(**inputs)

    return forward


def inference_table(args: argparse.Namespace) -> list[str]:
    lines = ["| scheme | seq × batch | dense (SDPA) ms | flex ms | flex / dense speed | dense mask | flex block mask |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for seq_len in args.seq_lens:
        batch = max(1, args.batch_tokens // seq_len)
        for scheme in ("alibi", "t5 bias", "documents", "causal + padding"):
            fields, inputs = inference_case(scheme, seq_len, batch)
            torch.manual_seed(0)
            dense = GPT(GPTConfig(**SIZE, max_seq_len=seq_len, **fields)).eval()
            flexed = GPT(GPTConfig(**SIZE, max_seq_len=seq_len, attn_implementation="flex", **fields)).eval()
            flexed.load_state_dict(dense.state_dict())

            real = inputs.get("attention_mask", torch.ones(inputs["input_ids"].shape, dtype=torch.bool))
            with torch.no_grad():  # padded rows differ by design (dense lets them see every key, flex none)
                difference = (dense(**inputs) - flexed(**inputs))[real].abs().max().item()
            times = timed_rounds({"dense": forward_of(dense, inputs), "flex": forward_of(flexed, inputs)},
                                 args.repeats, args.steps)
            lines.append(f"| {scheme} | {seq_len} × {batch} | {1e3 * times['dense']:.1f} | {1e3 * times['flex']:.1f} | "
                         f"{times['dense'] / times['flex']:.2f}× | {mask_bytes(dense, inputs) / 2**20:.1f} MiB | "
                         f"{mask_bytes(flexed, inputs) / 2**10:.1f} KiB |")
            print(f"  inference {scheme} {seq_len}: dense {1e3 * times['dense']:.1f} ms, flex "
                  f"{1e3 * times['flex']:.1f} ms (max |Δ logits| {difference:.1e})", flush=True)
    return lines


# ---------------------------------------------------------------------------------------------
# Training: the step before and now


def import_before(rev: str) -> ModuleType:
    """The zoo package as it was at git revision ``rev``, importable beside today's as ``zoo_before``
    (its own imports rewritten), so "before" runs the old model code in this same process."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", rev, "zoo"], cwd=repo, capture_output=True, check=True).stdout
    root = Path(tempfile.mkdtemp(prefix="zoo-before-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "zoo").rename(root / "zoo_before")
    for path in (root / "zoo_before").rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\b(from|import) zoo(?=[\s.])", r"\1 zoo_before", text))
    sys.path.insert(0, str(root))
    return importlib.import_module("zoo_before.models")


def training_steps(family: str, seq_len: int, batch: int, precision: str, before_models: ModuleType
                   ) -> dict[str, Callable[[], None]]:
    ids = torch.randint(4, 8192, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    shifted = F.pad(ids[:, 1:], (0, 1), value=-100)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def build(models: ModuleType | None = None) -> torch.nn.Module:
        torch.manual_seed(0)
        gpt, gpt_config, t5, t5_config = ((GPT, GPTConfig, T5, T5Config) if models is None else
                                          (models.GPT, models.GPTConfig, models.T5, models.T5Config))
        if family == "t5":
            return t5(t5_config(**SIZE, max_seq_len=seq_len)).train()
        return gpt(gpt_config(**SIZE, max_seq_len=seq_len, position="alibi")).train()

    def logits_of(model: torch.nn.Module) -> torch.Tensor:
        return model(ids, ids) if family == "t5" else model(ids)

    def before() -> Callable[[], None]:
        model = build(before_models)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False, fused=False)
        perplexity, accuracy = Perplexity(ignore_index=-100), MulticlassAccuracy(8192, average="micro",
                                                                                 ignore_index=-100)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                logits = logits_of(model)
                if family != "t5":
                    logits, labels = logits[:, :-1], ids[:, 1:]
                else:
                    labels = ids
                loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
            detached = logits.detach().float()
            perplexity.update(detached, labels)
            accuracy.update(detached.flatten(0, 1), labels.flatten())
            loss.backward()
            optimizer.step()

        return step

    def now(compiled: bool) -> Callable[[], None]:
        model = build()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        labels = ids if family == "t5" else shifted

        def step_loss() -> torch.Tensor:
            return token_cross_entropy(logits_of(model).flatten(0, 1), labels.flatten())

        if compiled:  # as --compile.enabled: the stacks, then the whole step (model, head, loss) as one graph
            compile_model(model, dynamic=False)
            step_loss = torch.compile(step_loss, dynamic=False)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = step_loss()
            loss.backward()
            optimizer.step()

        return step

    return {"before": before(), "eager": now(False), "compiled": now(True)}


def training_table(args: argparse.Namespace) -> list[str]:
    before_models = import_before(args.before)
    lines = ["| model | precision | seq × batch | before tok/s | now eager tok/s | now compiled tok/s | now / before |",
             "|---|---|---|---:|---:|---:|---:|"]
    for family in ("alibi", "t5"):
        for precision in args.precisions:
            for seq_len in args.seq_lens:
                batch = max(1, args.batch_tokens // seq_len)
                torch._dynamo.reset()  # fresh compiled models each cell (dynamo keeps 8 per function)
                steps = training_steps(family, seq_len, batch, precision, before_models)
                times = timed_rounds(steps, args.repeats, args.steps)
                rate = {name: batch * seq_len / seconds for name, seconds in times.items()}
                best = max(rate["eager"], rate["compiled"])
                name = "GPT + ALiBi" if family == "alibi" else "T5 (relative bias)"
                lines.append(f"| {name} | {precision} | {seq_len} × {batch} | {rate['before']:.0f} | "
                             f"{rate['eager']:.0f} | {rate['compiled']:.0f} | {best / rate['before']:.2f}× |")
                print("  training " + lines[-1], flush=True)
    return lines


def kernel_table(args: argparse.Namespace) -> list[str]:
    lines = ["| attention | keys × batch | flash kernel ms | compiled (zoo.blocks.sdpa) ms | speed-up | max |Δ grad| |",
             "|---|---|---:|---:|---:|---:|"]
    for causal, seq_len in [(c, t) for c in (True, False) for t in sorted({256, *args.seq_lens})]:
        batch = max(1, args.batch_tokens // seq_len)
        torch.manual_seed(0)
        q, k, v = (torch.randn(batch, 4, seq_len, 64, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        grad = torch.randn(batch, 4, seq_len, 64, dtype=torch.bfloat16)
        torch._dynamo.reset()
        compiled = torch.compile(lambda q, k, v, c=causal: sdpa_attention(q, k, v, is_causal=c), dynamic=False)

        inputs = (q, k, v)

        def step(fn: Callable[..., torch.Tensor], inputs=inputs, grad=grad) -> Callable[[], tuple[torch.Tensor, ...]]:
            return lambda: torch.autograd.grad(fn(*inputs), inputs, grad)

        flash = step(lambda q, k, v, c=causal: F.scaled_dot_product_attention(q, k, v, is_causal=c))
        difference = max((a.float() - b.float()).abs().max().item()
                         for a, b in zip(flash(), step(compiled)(), strict=True))
        times = timed_rounds({"flash": flash, "compiled": step(compiled)}, args.repeats, args.steps)
        kind = "causal" if causal else "bidirectional"
        lines.append(f"| {kind} | {seq_len} × {batch} | {1e3 * times['flash']:.2f} | {1e3 * times['compiled']:.2f} | "
                     f"{times['flash'] / times['compiled']:.2f}× | {difference:.1e} |")
        print("  kernel " + lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", nargs="+", type=int, default=None, help="default 512 1024 (--quick: 512)")
    parser.add_argument("--batch-tokens", type=int, default=1024, help="tokens per batch")
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--repeats", type=int, default=None, help="rounds per setting (default 5; --quick 3)")
    parser.add_argument("--steps", type=int, default=2, help="calls per round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip", nargs="+", choices=["inference", "training", "kernel"], default=[])
    parser.add_argument("--before", default=BEFORE, help="git revision whose zoo is 'before' (default: the zoo "
                        "before the speed work)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.seq_lens = args.seq_lens or ([512] if args.quick else [512, 1024])
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"4 layers, width 256, 4 heads, vocab 8192, {args.batch_tokens} tokens per batch; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} rounds × {args.steps} calls", flush=True)
    if "inference" not in args.skip:
        if not flex_available():
            print("this torch has no FlexAttention: inference table skipped")
        else:
            print("\n".join(["", "Inference forward:", *inference_table(args)]), flush=True)
    if "training" not in args.skip:
        print("\n".join(["", "Training step (forward + backward + AdamW):", *training_table(args)]), flush=True)
    if "kernel" not in args.skip:
        print("\n".join(["", "Training attention, bf16 (forward + backward of the op):", *kernel_table(args)]),
              flush=True)


if __name__ == "__main__":
    main()
