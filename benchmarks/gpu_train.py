"""GPU training throughput: a GPT-2-124M-size zoo model trained in bf16 on one GPU, reporting
tokens/s and MFU against the GPU's bf16 peak.

The recipe is the one nanoGPT and litgpt measure with: GPT-2 small (12 layers, width 768, 12 heads,
vocabulary 50304 — 50257 rounded up to a multiple of 128 for the tensor cores), sequence 1024,
bf16 autocast over float32 weights (``--precision bf16-mixed``, what ``zoo fit --trainer.precision
bf16-mixed`` does) or bf16 weights (``bf16-true``), SDPA's flash kernel (``is_causal``), fused AdamW,
TF32 for what stays in float32, and ``torch.compile`` over the forward and the loss together, so
the cross-entropy over the vocabulary fuses into the graph. Batches are random tokens made on the
GPU: this measures the model, not a data pipeline.

MFU = model FLOPs per step (``zoo.flops``: every matmul, forward + backward, attention over the full
``t × t`` scores — nanoGPT's 6N + 12·L·H·Q·T) / step time / peak. The peak is the GPU's dense bf16
datasheet figure (``zoo.speed.GPU_BF16_PEAKS``: H100/H200 SXM 989 TFLOP/s, A100 312) or
``--peak-tflops``; the MFU against a measured large-matmul rate is printed beside it. nanoGPT
reports about 37 % on an A100 and litgpt about 52 %; the zoo's target is 50 % on an H100/H200.

    python benchmarks/gpu_train.py                          # GPT-2 124M, batch 32 x 1024, 30 steps
    python benchmarks/gpu_train.py --batch-size 16 --steps 50 --precision bf16-true
    python benchmarks/gpu_train.py --layers 2 --steps 3     # a smoke run (the GPU test does this)

Prints one line per ``--log-every`` steps and, last, ``tokens/s: N  MFU: X.X % of P TFLOP/s (...)``.
Needs a CUDA GPU; on a CPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from zoo.flops import forward_flops
from zoo.models import GPT, GPTConfig
from zoo.speed import compile_model, gpu_peak_flops, measure_matmul_peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab-size", type=int, default=50304)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--precision", choices=["bf16-mixed", "bf16-true"], default="bf16-mixed")
    parser.add_argument("--compile", choices=["step", "stacks", "none"], default="step",
                        help="step: forward + loss in one graph; stacks: zoo.speed.compile_model (what "
                             "--compile.enabled does); none: eager")
    parser.add_argument("--mode", default="max-autotune-no-cudagraphs", help="torch.compile mode ('default' too)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of this GPU; default: datasheet")
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_train.py needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)")
        return 2
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)

    config = GPTConfig(vocab_size=args.vocab_size, max_seq_len=args.seq_len, embed_dim=args.hidden,
                       num_layers=args.layers, num_heads=args.heads, dropout=0.0, activation="gelu_tanh")
    model = GPT(config).to(device).train()
    if args.precision == "bf16-true":
        model = model.to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    mode = None if args.mode == "default" else args.mode

    def loss_fn(ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = model(ids)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())

    if args.compile == "step":
        loss_fn = torch.compile(loss_fn, mode=mode)
    elif args.compile == "stacks":
        compile_model(model, mode=mode)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len + 1), device=device)
        return ids[:, :-1], ids[:, 1:]

    def step() -> torch.Tensor:
        ids, labels = batch()
        with autocast:
            loss = loss_fn(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    step_flops = 3 * forward_flops(config, args.batch_size, args.seq_len)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else gpu_peak_flops(device)
    name = torch.cuda.get_device_name(device)
    params = model.num_parameters() / 1e6
    print(f"{name}: GPT {params:.0f}M params ({args.layers} layers, width {args.hidden}), batch {args.batch_size} x "
          f"{args.seq_len}, {args.precision}, compile={args.compile}, torch {torch.__version__}", flush=True)

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    print(f"warm-up ({args.warmup} steps, compilation included): {time.perf_counter() - start:.1f} s", flush=True)

    torch.cuda.reset_peak_memory_stats()
    start = window = time.perf_counter()
    for i in range(1, args.steps + 1):
        loss = step()
        if i % args.log_every == 0 or i == args.steps:
            torch.cuda.synchronize()
            now = time.perf_counter()
            steps = args.log_every if i % args.log_every == 0 else i % args.log_every
            rate = steps * args.batch_size * args.seq_len / (now - window)
            print(f"step {i}: loss {loss.item():.3f}, {rate:,.0f} tokens/s", flush=True)
            window = now
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    tokens_per_sec = args.steps * args.batch_size * args.seq_len / elapsed
    achieved = step_flops * args.steps / elapsed
    measured = measure_matmul_peak(torch.bfloat16, device, sizes=(8192,), seconds=2.0)
    print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; {achieved / 1e12:.0f} TFLOP/s achieved; "
          f"measured bf16 matmul peak {measured / 1e12:.0f} TFLOP/s (MFU against it {100 * achieved / measured:.1f} %)")
    if peak:
        print(f"tokens/s: {tokens_per_sec:,.0f}  MFU: {100 * achieved / peak:.1f} % of {peak / 1e12:.0f} TFLOP/s "
              f"(bf16 dense peak, {'--peak-tflops' if args.peak_tflops else 'datasheet'})")
    else:
        print(f"tokens/s: {tokens_per_sec:,.0f}  MFU: {100 * achieved / measured:.1f} % of {measured / 1e12:.0f} "
              f"TFLOP/s (measured; no datasheet peak known for {name!r}, give --peak-tflops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
