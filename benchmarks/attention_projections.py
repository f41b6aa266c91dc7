"""Separate ``q_proj``/``k_proj``/``v_proj`` (what adapters need) against the fused QKV layout they
replaced, in one process: the same model twice — once as it is, once with each attention's
projections fused back into one parameter (``fuse``, the old ``qkv_proj`` / ``kv_proj``) — timed in
alternating rounds (median), so load from other processes hits both alike.

Measured: a training step (forward + backward + AdamW; the split layout stacks its weights each
call) and KV-cached greedy decoding (no autograd: the split layout keeps its stack until a weight
changes). Outputs are checked equal first.

    python benchmarks/attention_projections.py
    python benchmarks/attention_projections.py --family t5 --hidden 512
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import types

import torch
import torch.nn.functional as F
from torch import nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.generation import generate
from zoo.models.registry import get_family


def fuse(model: nn.Module) -> nn.Module:
    """``model`` with every attention's q/k/v (or cross-attention k/v) projection fused into one
    parameter, as the layout before the split held them; ``project`` reads it directly."""
    for attn in model.modules():
        if not isinstance(attn, MultiHeadAttention):
            continue
        names = ("k_proj", "v_proj") if attn.cross_attention else ("q_proj", "k_proj", "v_proj")
        layers = [getattr(attn, n) for n in names]
        attn.fused_weight = nn.Parameter(torch.cat([m.weight.detach() for m in layers]))
        attn.fused_bias = None if layers[0].bias is None else nn.Parameter(torch.cat([m.bias.detach() for m in layers]))
        for name in names[-2:] if attn.cross_attention else names:
            delattr(attn, name)  # q_proj stays for cross-attention queries

        def project(self, x, requested, _names=names):
            assert tuple(requested) == _names
            return F.linear(x, self.fused_weight, self.fused_bias)

        attn.project = types.MethodType(project, attn)
    return model


def train_step(model, optimizer, batch, shape):
    if shape == "encoder-decoder":
        logits = model(batch, batch)
    else:
        logits = model(batch)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.flatten())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="gpt", choices=["gpt", "llama", "bert", "t5"])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    family = get_family(args.family)
    config = family.make_config(vocab_size=8000, embed_dim=args.hidden, num_layers=args.layers, num_heads=4,
                                max_seq_len=max(512, args.seq_len + args.new_tokens), dropout=0.0)
    split = family.model_class(config)
    fused = fuse(copy.deepcopy(split))
    batch = torch.randint(7, 8000, (args.batch_size, args.seq_len))
    with torch.no_grad():
        run = (lambda m: m(batch, batch)) if family.shape == "encoder-decoder" else (lambda m: m(batch))
        torch.testing.assert_close(run(split.eval()), run(fused.eval()), rtol=1e-5, atol=1e-5)
    models = {"split": split.train(), "fused": fused.train()}
    optimizers = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    times: dict[str, dict[str, list[float]]] = {"train": {k: [] for k in models}, "decode": {k: [] for k in models}}
    prompt = batch[:4, :16]
    for _ in range(args.rounds):
        for name, model in models.items():
            model.train()
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizers[name], batch, family.shape)
            times["train"][name].append((time.perf_counter() - start) / args.steps)
            if family.shape != "encoder":
                model.eval()
                start = time.perf_counter()
                generate(model, prompt, max_new_tokens=args.new_tokens)
                times["decode"][name].append(time.perf_counter() - start)
    tokens = args.batch_size * args.seq_len
    print(f"{args.family}, {args.layers} layers, width {args.hidden}; training batch {args.batch_size} x "
          f"{args.seq_len}; "
          f"greedy decoding 4 x {args.new_tokens} new tokens; median of {args.rounds} alternating rounds; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    print("| measurement | fused qkv_proj | separate q/k/v | separate / fused |")
    print("|---|---:|---:|---:|")
    train = {k: tokens / statistics.median(v) for k, v in times["train"].items()}
    ratio = train["split"] / train["fused"]
    print(f"| training tokens/s | {train['fused']:.0f} | {train['split']:.0f} | {ratio:.3f}× |")
    if family.shape != "encoder":
        decode = {k: 4 * args.new_tokens / statistics.median(v) for k, v in times["decode"].items()}
        print(f"| decoding tokens/s | {decode['fused']:.0f} | {decode['split']:.0f} | "
              f"{decode['split'] / decode['fused']:.3f}× |")


if __name__ == "__main__":
    main()
