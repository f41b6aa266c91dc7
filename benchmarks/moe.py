"""Mixture-of-experts speed: the zoo's top-k MoE feed-forward against the dense feed-forward of equal
*active* parameters (a dense ``ffn_dim`` of k · the expert width: each token multiplies the same
number of weights), and against transformers' ``MixtralSparseMoeBlock`` / ``MixtralForCausalLM`` on
the same weights where transformers is installed.

Two levels, each timed in alternating rounds (load from other processes hits every setting alike),
median over ``--repeats`` rounds of ``--steps`` steps, fp32:

- block: the feed-forward alone on ``batch × seq`` tokens, forward (inference mode) and forward +
  backward;
- model: a LLaMA-style ``GPT`` (gated experts, GQA, rotary), forward + backward + AdamW step.

    python benchmarks/moe.py                  # ~2 min on 2 CPU cores
    python benchmarks/moe.py --experts 4 8 16 --top-k 2 --width 512

Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.blocks.feed_forward import FeedForward
from zoo.blocks.moe import MixtureOfExperts
from zoo.models import GPT, GPTConfig


def time_rounds(settings: dict[str, Callable[[], None]], steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each setting, rounds alternating between settings."""
    for run in settings.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(repeats):
        for name, run in settings.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def hf_moe_block(moe: MixtureOfExperts, width: int, expert_width: int) -> nn.Module | None:
    """transformers' Mixtral MoE block with ``moe``'s weights (None without transformers)."""
    try:
        import transformers
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    except ImportError:
        return None
    config = transformers.MixtralConfig(hidden_size=width, intermediate_size=expert_width,
                                        num_local_experts=len(moe.experts), num_experts_per_tok=moe.top_k)
    block = MixtralSparseMoeBlock(config)
    with torch.no_grad():
        block.gate.weight.copy_(moe.router.weight)
        block.experts.gate_up_proj.copy_(torch.stack(
            [torch.cat((e.gate_proj.weight, e.up_proj.weight)) for e in moe.experts]))
        block.experts.down_proj.copy_(torch.stack([e.down_proj.weight for e in moe.experts]))
    return block


@dataclass
class Setting:
    """One feed-forward to time: its module, the parameters a token uses and holds, and the
    dense block of equal active parameters it is compared with."""

    module: nn.Module
    active: int
    total: int
    dense: str


def block_settings(args: argparse.Namespace) -> dict[str, Setting]:
    """Dense blocks of k · expert width, and for each k the MoE blocks of every expert count."""
    d, f = args.width, args.expert_width
    settings: dict[str, Setting] = {}
    for k in args.top_k:
        dense = f"dense ffn_dim={k * f}"
        block = FeedForward(d, k * f, "swiglu", bias=False)
        size = sum(p.numel() for p in block.parameters())
        settings[dense] = Setting(block, size, size, dense)
        for e in (e for e in args.experts if k <= e):
            moe = MixtureOfExperts([FeedForward(d, f, "swiglu", bias=False) for _ in range(e)], d, top_k=k)
            active = d * e + k * 3 * d * f  # the router, then k experts of gate, up and down
            total = sum(p.numel() for p in moe.parameters())
            settings[f"moe E={e} k={k} ffn_dim={f}"] = Setting(moe, active, total, dense)
            hf = hf_moe_block(moe, d, f) if k > 1 else None  # Mixtral renormalises top-1 to weight 1
            if hf is not None:
                settings[f"transformers Mixtral E={e} k={k}"] = Setting(hf, active, total, dense)
    return settings


def run_blocks(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.seq, args.width)
    tokens = args.batch * args.seq
    settings = block_settings(args)

    def forward(block: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                block(x)
        return run

    def train(block: nn.Module) -> Callable[[], None]:
        def run() -> None:
            block.zero_grad(set_to_none=True)
            block(x).square().mean().backward()
        return run

    fwd = time_rounds({n: forward(s.module) for n, s in settings.items()}, args.steps, args.repeats)
    bwd = time_rounds({n: train(s.module) for n, s in settings.items()}, args.steps, args.repeats)
    print(f"\nblock: {args.batch}×{args.seq} tokens, width {args.width}, swiglu experts, fp32\n")
    print("| feed-forward | active params | total params | forward tokens/s | fwd+bwd tokens/s | fwd+bwd vs dense |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in settings.items():
        print(f"| {name} | {s.active / 1e3:.0f}k | {s.total / 1e3:.0f}k | {tokens / fwd[name]:,.0f} | "
              f"{tokens / bwd[name]:,.0f} | {bwd[s.dense] / bwd[name]:.2f}× |")


def run_models(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    size = dict(vocab_size=args.vocab_size, embed_dim=args.width, num_layers=args.layers, num_heads=8,
                num_kv_heads=2, max_seq_len=args.seq)
    k, e, f = args.top_k[-1], args.experts[-1], args.expert_width
    models: dict[str, nn.Module] = {
        f"dense ffn_dim={k * f}": GPT(GPTConfig.llama(**size, ffn_dim=k * f)),
        f"moe E={e} k={k} ffn_dim={f}": GPT(GPTConfig.llama(**size, ffn_dim=f, num_experts=e, experts_per_token=k)),
    }
    try:
        from zoo.hf import to_hf

        if k > 1:
            models[f"transformers Mixtral E={e} k={k}"] = to_hf(models[f"moe E={e} k={k} ffn_dim={f}"])
    except ImportError:
        pass
    ids = torch.randint(0, args.vocab_size, (args.batch, args.seq))
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}

    def step(name: str) -> Callable[[], None]:
        model, optimizer = models[name], optimizers[name]

        def run() -> None:
            out = model(ids)
            logits = out.logits if hasattr(out, "logits") else out
            F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    seconds = time_rounds({name: step(name) for name in models}, args.steps, args.repeats)
    tokens = args.batch * args.seq
    dense = next(iter(models))
    print(f"\nmodel: LLaMA-style GPT, {args.layers} layers, width {args.width}, {args.batch}×{args.seq} tokens, "
          "forward + backward + AdamW, fp32\n")
    print("| model | params | training tokens/s | vs dense |")
    print("|---|---:|---:|---:|")
    for name, model in models.items():
        total = sum(p.numel() for p in model.parameters())
        speed = seconds[dense] / seconds[name]
        print(f"| {name} | {total / 1e6:.2f}M | {tokens / seconds[name]:,.0f} | {speed:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--expert-width", type=int, default=256, help="ffn_dim of each expert")
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    run_blocks(args)
    run_models(args)


if __name__ == "__main__":
    main()
