"""Training speed against a nanoGPT-style GPT-2: the same shape written the way nanoGPT writes it
(plain PyTorch modules, one fused qkv projection, ``F.scaled_dot_product_attention(is_causal=True)``,
tied head, ``F.cross_entropy`` inside ``forward``, the whole model under ``torch.compile``) against
the zoo's GPT with ``--compile.enabled`` (``compile_model``, then the whole step — model, head and
loss — under ``torch.compile``, as ``CompileModel`` compiles a task's ``forward_loss``). Both train with
fused AdamW, bf16 autocast or float32, in alternating rounds in one process; the table gives
tokens/s, the ratio and both parameter counts (equal: the same architecture). Both run under the
allocator setting of the ``zoo`` command (``zoo.speed.reuse_freed_memory``).

    python benchmarks/nanogpt_style.py                    # seq 128 and 512, bf16 and fp32 (~4 min, 2 CPU cores)
    python benchmarks/nanogpt_style.py --seq-lens 512 --precisions bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models import GPT, GPTConfig
from zoo.speed import compile_model, reuse_freed_memory
from zoo.tasks.losses import token_cross_entropy


class NanoBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.c_attn, self.c_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.c_fc, self.mlp_proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        q, k, v = (z.view(b, t, self.heads, e // self.heads).transpose(1, 2)
                   for z in self.c_attn(self.ln_1(x)).split(e, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, e)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class NanoGPT(nn.Module):
    def __init__(self, vocab: int, width: int, heads: int, layers: int, seq_len: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(seq_len, width)
        self.h = nn.ModuleList(NanoBlock(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)


def cell(args: argparse.Namespace, seq_len: int, precision: str) -> str:
    torch._dynamo.reset()  # fresh compiled models per cell
    torch.manual_seed(0)
    batch = max(1, args.batch_tokens // seq_len)
    ids = torch.randint(10, args.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    labels = torch.cat((ids[:, 1:], torch.full_like(ids[:, :1], -100)), dim=1)
    nano = NanoGPT(args.vocab_size, args.hidden, args.heads, args.layers, seq_len)
    nano.compile()
    zoo = GPT(GPTConfig(vocab_size=args.vocab_size, embed_dim=args.hidden, num_layers=args.layers,
                        num_heads=args.heads, max_seq_len=seq_len, dropout=0.0, activation="gelu_tanh"))
    compile_model(zoo, dynamic=False)
    zoo_step = torch.compile(lambda: token_cross_entropy(zoo(ids).flatten(0, 1), labels.flatten()), dynamic=False)
    losses = {"nanoGPT-style": lambda: nano(ids, labels), "zoo": zoo_step}
    models = {"nanoGPT-style": nano, "zoo": zoo}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for name, m in models.items()}

    def steps(name: str, count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            optimizers[name].zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = losses[name]()
            loss.backward()
            optimizers[name].step()
        return (time.perf_counter() - start) / count

    for name in models:
        steps(name, 2)  # compilation, allocation
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(args.repeats):
        order = list(models) if round_index % 2 else list(models)[::-1]
        for name in order:
            times[name].append(steps(name, args.steps))
    rate = {name: batch * seq_len / statistics.median(values) for name, values in times.items()}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    nano_rate, zoo_rate = rate["nanoGPT-style"], rate["zoo"]
    return (f"| {precision} | {seq_len} × {batch} | {nano_rate:.0f} | {zoo_rate:.0f} | {zoo_rate / nano_rate:.2f}× | "
            f"{params['nanoGPT-style'] / 1e6:.2f}M / {params['zoo'] / 1e6:.2f}M |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per model")
    args = parser.parse_args()
    reuse_freed_memory()
    print(f"GPT-2 shape: {args.layers} layers, width {args.hidden}, {args.heads} heads, vocab {args.vocab_size}, "
          f"{args.batch_tokens} tokens a batch; both compiled, fused AdamW; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} rounds × {args.steps} steps", flush=True)
    lines = ["| precision | seq × batch | nanoGPT-style tok/s | zoo tok/s | zoo / nanoGPT-style | params |",
             "|---|---|---:|---:|---:|---:|"]
    for precision in args.precisions:
        for seq_len in args.seq_lens:
            lines.append(cell(args, seq_len, precision))
            print("  " + lines[-1], flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
