"""Generation speed: zoo ``generate`` against Hugging Face ``generate()`` on the same weights.

Builds small random Hugging Face models (``GPT2LMHeadModel``, ``T5ForConditionalGeneration``),
converts each with ``zoo.hf.from_hf``, and times greedy decoding of the same prompts in the same
process — with and without a KV cache — for exactly ``--new-tokens`` tokens (``min_new_tokens``
keeps eos from ending rows early). Runs alternate between the implementations so that load from
other processes hits both alike; each cell is the median of ``--repeats`` runs. It also checks that
both produce the same tokens. Prints a markdown table.

    python benchmarks/generation.py                      # 4 layers, width 256, 256 new tokens, batch 1 and 8
    python benchmarks/generation.py --batch-sizes 4 --threads 1
    python benchmarks/generation.py --quick              # 32 new tokens, fewer runs: checks it works

The last lines say ``zoo/transformers generation: ...``: the speed ratio of every cell, cached and
uncached, per family and batch size.

Needs ``transformers`` (``pip install -e ".[hf]"``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from zoo.generation import generate


def build_models(family: str, args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A random Hugging Face model of ``family`` and its zoo conversion, both in eval mode."""
    import transformers

    from zoo.hf import from_hf

    if family == "gpt":
        config = transformers.GPT2Config(
            vocab_size=args.vocab_size, n_positions=args.prompt_len + args.new_tokens, n_embd=args.hidden,
            n_layer=args.layers, n_head=args.heads, bos_token_id=2, eos_token_id=3, pad_token_id=0,
        )
        hf = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.T5Config(
            vocab_size=args.vocab_size, d_model=args.hidden, d_kv=args.hidden // args.heads, d_ff=4 * args.hidden,
            num_layers=args.layers, num_heads=args.heads, eos_token_id=3, pad_token_id=0,
            decoder_start_token_id=0,
        )
        hf = transformers.T5ForConditionalGeneration(config)
    hf.eval()
    return hf, from_hf(hf).eval()


def prompts(args: argparse.Namespace, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``--batch-size`` random prompts of different lengths (the longest ``--prompt-len``): left-padded
    for the decoder, right-padded for the encoder, with their attention mask."""
    generator = torch.Generator().manual_seed(0)
    b, s = args.batch_size, args.prompt_len
    ids = torch.randint(4, args.vocab_size, (b, s), generator=generator)
    lengths = [s - (i * s) // (2 * b) for i in range(b)]  # s, then shorter
    mask = torch.zeros(b, s, dtype=torch.long)
    for row, length in enumerate(lengths):
        if family == "gpt":
            mask[row, s - length :] = 1
        else:
            mask[row, :length] = 1
    return ids.masked_fill(mask == 0, 0), mask


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_family(family: str, args: argparse.Namespace) -> list[dict]:
    hf, zoo = build_models(family, args)
    return [row for batch_size in args.batch_sizes for row in run_batch(family, hf, zoo, batch_size, args)]


def run_batch(family: str, hf: torch.nn.Module, zoo: torch.nn.Module, batch_size: int, args: argparse.Namespace
              ) -> list[dict]:
    args = argparse.Namespace(**{**vars(args), "batch_size": batch_size})
    ids, mask = prompts(args, family)
    n = args.new_tokens
    options = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)

    def hf_run(cache: bool) -> torch.Tensor:
        return hf.generate(ids, attention_mask=mask, use_cache=cache, pad_token_id=0, eos_token_id=3, **options)

    def zoo_run(cache: bool) -> torch.Tensor:
        return generate(zoo, ids, mask, use_cache=cache, pad_token_id=0, eos_token_id=3, **options)

    # No inference_mode wrapper: each library runs with its own grad handling, as users get it.
    rows = []
    for cache in (True, False):
        repeats = args.repeats if cache else args.uncached_repeats
        hf_run(cache), zoo_run(cache)  # warm up allocators and lazy imports
        times: dict[str, list[float]] = {"transformers": [], "zoo": []}
        outputs = {}
        for _ in range(repeats):
            for name, fn in (("transformers", hf_run), ("zoo", zoo_run)):
                seconds, outputs[name] = timed(lambda fn=fn, cache=cache: fn(cache))
                times[name].append(seconds)
        same = torch.equal(outputs["transformers"], outputs["zoo"])
        for name, values in times.items():
            rows.append({
                "family": family, "batch": batch_size, "implementation": name, "cache": cache, "same": same,
                "tokens_per_s": args.batch_size * n / statistics.median(values),
            })
    return rows


def markdown(rows: list[dict]) -> str:
    def find(family: str, batch: int, name: str, cache: bool) -> float:
        return next(r["tokens_per_s"] for r in rows if (r["family"], r["batch"], r["implementation"], r["cache"]) ==
                    (family, batch, name, cache))

    lines = [
        "| model | batch | implementation | KV cache | tokens/s | zoo / transformers | cached / uncached "
        "| same tokens |",
        "|---|---:|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        family, batch, name, cache = r["family"], r["batch"], r["implementation"], r["cache"]
        vs_hf = (f"{find(family, batch, 'zoo', cache) / find(family, batch, 'transformers', cache):.2f}×"
                 if name == "zoo" else "")
        speedup = f"{find(family, batch, name, True) / find(family, batch, name, False):.2f}×" if cache else ""
        lines.append(f"| {family} | {batch} | {name} | {'yes' if cache else 'no'} | {r['tokens_per_s']:.1f} "
                     f"| {vs_hf} | {speedup} | {'yes' if r['same'] else 'NO'} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """``zoo/transformers generation: gpt b1 cached 2.10× uncached 1.05×, ...``: every cell's ratio."""
    cells = []
    for r in rows:
        if r["implementation"] != "zoo":
            continue
        hf = next(o["tokens_per_s"] for o in rows if o["implementation"] == "transformers" and
                  (o["family"], o["batch"], o["cache"]) == (r["family"], r["batch"], r["cache"]))
        cells.append(f"{r['family']} b{r['batch']} {'cached' if r['cache'] else 'uncached'} "
                     f"{r['tokens_per_s'] / hf:.2f}×")
    return "zoo/transformers generation: " + ", ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["gpt", "t5"], choices=["gpt", "t5"])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=None, help="default 256 (--quick: 32)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cell with the cache (median; "
                        "default 5, --quick 2)")
    parser.add_argument("--uncached-repeats", type=int, default=None, help="timed runs per cell without the cache "
                        "(default 3, --quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a fast pass that checks the benchmark runs")
    args = parser.parse_args()
    args.new_tokens = args.new_tokens or (32 if args.quick else 256)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.uncached_repeats = args.uncached_repeats or (1 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(0)
    rows = [row for family in args.families for row in run_family(family, args)]
    import transformers

    print(f"greedy, {args.new_tokens} new tokens, batch {' and '.join(map(str, args.batch_sizes))}, prompts up to "
          f"{args.prompt_len} tokens; {args.layers} layers, width {args.hidden}, {args.heads} heads, vocab "
          f"{args.vocab_size}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print(markdown(rows))
    print()
    print(summary(rows))


if __name__ == "__main__":
    main()
