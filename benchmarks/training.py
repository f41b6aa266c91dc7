"""Training speed: a zoo model's forward + backward + AdamW step against the same model in
``transformers``, same weights (``zoo.hf.to_hf``), same batches, same process.

Runs alternate between the implementations so that load from other processes hits both alike; each
cell is the median over ``--repeats`` rounds of ``--steps`` steps. Also checks that the first losses
agree. Prints a markdown table of tokens per second and the zoo / transformers ratio.

    python benchmarks/training.py                         # GPT-2, LLaMA, BERT, T5; 4 layers, width 256
    python benchmarks/training.py --families gpt2 --seq-len 512 --batch-size 4

Needs ``transformers`` (``pip install -e ".[hf]"``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from zoo.models import BERT, GPT, T5, BertConfig, GPTConfig, T5Config


def build(family: str, args: argparse.Namespace) -> torch.nn.Module:
    size = dict(vocab_size=args.vocab_size, embed_dim=args.hidden, num_layers=args.layers, num_heads=args.heads,
                max_seq_len=args.seq_len, dropout=0.0)
    if family == "gpt2":
        return GPT(GPTConfig(**size, activation="gelu_tanh"))
    if family == "llama":
        return GPT(GPTConfig.llama(**size, num_kv_heads=args.heads // 2))
    if family == "bert":
        return BERT(BertConfig(**size, type_vocab_size=2))
    return T5(T5Config(**size))


def step_fns(family: str, zoo: torch.nn.Module, hf: torch.nn.Module, ids: torch.Tensor
             ) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """``(zoo_loss, hf_loss)``: each computes the same loss on ``ids`` with its own model."""
    labels = ids.clone()
    if family == "t5":
        dec = torch.cat((torch.zeros_like(ids[:, :1]), ids[:, :-1]), dim=1)
        return (lambda: F.cross_entropy(zoo(ids, dec).flatten(0, 1), labels.flatten()),
                lambda: hf(input_ids=ids, decoder_input_ids=dec, labels=labels).loss)
    if family == "bert":
        return (lambda: F.cross_entropy(zoo(ids).flatten(0, 1), labels.flatten()),
                lambda: F.cross_entropy(hf(input_ids=ids).logits.flatten(0, 1), labels.flatten()))
    return (lambda: F.cross_entropy(zoo(ids)[:, :-1].flatten(0, 1), labels[:, 1:].flatten()),
            lambda: hf(input_ids=ids, labels=labels).loss)


def train_steps(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()
    return time.perf_counter() - start


def run_family(family: str, args: argparse.Namespace) -> dict:
    from zoo.hf import to_hf

    torch.manual_seed(0)
    zoo = build(family, args).train()
    hf = to_hf(zoo).train()
    hf.config.use_cache = False
    ids = torch.randint(10, args.vocab_size, (args.batch_size, args.seq_len),
                        generator=torch.Generator().manual_seed(0))
    zoo_loss, hf_loss = step_fns(family, zoo, hf, ids)
    with torch.no_grad():
        first = (float(zoo_loss()), float(hf_loss()))
    train_steps(zoo, zoo_loss, 2), train_steps(hf, hf_loss, 2)  # warm-up
    times: dict[str, list[float]] = {"zoo": [], "transformers": []}
    for _ in range(args.repeats):
        times["zoo"].append(train_steps(zoo, zoo_loss, args.steps))
        times["transformers"].append(train_steps(hf, hf_loss, args.steps))
    tokens = args.batch_size * args.seq_len * args.steps
    speed = {name: tokens / statistics.median(values) for name, values in times.items()}
    return {"family": family, "zoo": speed["zoo"], "hf": speed["transformers"], "loss_diff": abs(first[0] - first[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["gpt2", "llama", "bert", "t5"],
                        choices=["gpt2", "llama", "bert", "t5"])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per implementation (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    rows = [run_family(family, args) for family in args.families]
    print(f"forward + backward + AdamW, batch {args.batch_size} x {args.seq_len} tokens; {args.layers} layers, "
          f"width {args.hidden}, {args.heads} heads, vocab {args.vocab_size}; fp32; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| model | zoo tokens/s | transformers tokens/s | zoo / transformers | first-loss difference |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['zoo']:.0f} | {r['hf']:.0f} | {r['zoo'] / r['hf']:.2f}× | {r['loss_diff']:.1e} |")


if __name__ == "__main__":
    main()
