"""Pretraining data at scale: peak memory and tokenisation speed against corpus size.

For each size, a text corpus of random words (lines of 5-30 words) is generated on disk, then two
fresh processes run, each measured by its peak resident set size (`ru_maxrss` of the child):

1. prepare: `TextDataModule.prepare_data()` — checks the file, trains the tokenizer (char: one
   streamed pass; SentencePiece: a bounded sample), streams the corpus into token shards;
2. fit: `zoo fit` for a few steps on those shards, all of them (GPT + the smoke overlay, whose
   `max_documents: 300` is lifted), with `--max-seq-len`-token blocks: the training sampler then
   orders tokens / max_seq_len blocks per epoch.

Flat memory means both peaks stay the same as the corpus grows. `--sampler-blocks N` adds the
training order alone for an epoch of N blocks, in fresh processes: torch's `DistributedSampler`
(what `SeededSampler` was built on: `randperm(n).tolist()`) against `SeededSampler` (a permutation
computed per position) — peak RSS above a bare `import torch`, time to the first index, and time to
resume at the epoch's last position. Run:

    python benchmarks/data.py --sizes-mb 1000 4000 --max-seq-len 32 --sampler-blocks 31000000 [--cold-fit] [--keep DIR]

`--cold-fit` adds `zoo fit` from an empty cache — tokenizer, shards and steps in one process, what a
first run on a new corpus does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

_PREPARE = """
import json, sys, time
from zoo.data import TextDataModule
t0 = time.perf_counter()
dm = TextDataModule(objective="clm", data_files=sys.argv[1], tokenizer=sys.argv[2], vocab_size=4000,
                    max_seq_len=128, cache_dir=sys.argv[3])
_ = dm.tokenizer
t1 = time.perf_counter()
dm.prepare_data()
t2 = time.perf_counter()
train, val = dm._tokenized("train"), dm._tokenized("validation")
print(json.dumps({"tokenizer_s": t1 - t0, "shards_s": t2 - t1,
                  "tokens": train.num_tokens + val.num_tokens}))
"""


def write_corpus(path: Path, megabytes: int, seed: int = 0) -> None:
    """Random-word lines, written 8 MB at a time so the generator stays small too."""
    rng = np.random.default_rng(seed)
    words = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(2, 10)))
                      for _ in range(5000)])
    target, written = megabytes * 1_000_000, 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            lengths = rng.integers(5, 30, size=20_000)
            picks = words[rng.integers(0, len(words), size=int(lengths.sum()))]
            lines, start = [], 0
            for length in lengths:
                lines.append(" ".join(picks[start : start + length]))
                start += length
            chunk = "\n".join(lines) + "\n"
            handle.write(chunk)
            written += len(chunk)


def run_child(args: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run one fresh process: its stdout, wall time and own peak RSS in GB (`wait4`'s rusage)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{args[:4]} failed:\n{err.read()[-3000:]}")
        return out.read(), wall, usage.ru_maxrss / 1e6  # ru_maxrss is in KiB on Linux


_SAMPLER = """
import itertools, json, resource, sys, time
import torch
from torch.utils.data import DistributedSampler
kind, n = sys.argv[1], int(sys.argv[2])
class Blocks:
    def __len__(self): return n
from zoo.data.datamodule import SeededSampler
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
if kind != "none":
    def make():
        if kind == "torch":
            return DistributedSampler(Blocks(), num_replicas=1, rank=0, shuffle=True, seed=0)
        return SeededSampler(Blocks(), num_replicas=1, rank=0, seed=0)
    start = time.perf_counter()
    first = list(itertools.islice(iter(make()), 1000))
    out["first_s"] = time.perf_counter() - start
    start = time.perf_counter()
    if kind == "torch":  # a resume replays the epoch's order up to its position
        next(itertools.islice(iter(make()), n - 1, None))
    else:
        sampler = make()
        sampler.load_state_dict({"epoch": 0, "yielded": n - 1})
        next(iter(sampler))
    out["resume_s"] = time.perf_counter() - start
out["extra_gb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1e6
print(json.dumps(out))
"""


def sampler_table(blocks: int, env: dict[str, str]) -> None:
    """Peak memory and time of one epoch's order of `blocks` blocks: DistributedSampler vs SeededSampler."""
    print(f"\ntraining order of {blocks:,} blocks (one process each; peak RSS above its imports)\n")
    print("| sampler | extra peak RSS GB | first 1000 indices s | resume at the last position s |")
    print("|---|---:|---:|---:|")
    for kind, name in (("torch", "torch DistributedSampler (randperm(n).tolist())"),
                       ("zoo", "zoo SeededSampler (BlockPermutation per position)")):
        stdout, _, _ = run_child([sys.executable, "-c", _SAMPLER, kind, str(blocks)], env)
        row = json.loads(stdout.strip().splitlines()[-1])
        print(f"| {name} | {row['extra_gb']:.2f} | {row['first_s']:.2f} | {row['resume_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--tokenizer", choices=["char", "sentencepiece"], default="char")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--max-seq-len", type=int, default=32, help="tokens per training block in the fit")
    parser.add_argument("--sampler-blocks", type=int, default=0, help="also time the training order alone")
    parser.add_argument("--cold-fit", action="store_true",
                        help="also run `zoo fit` from an empty cache (tokenizer, shards and steps in one process)")
    parser.add_argument("--keep", type=Path, help="keep corpora and caches here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zoo-data-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    rows, cold = [], []

    def fit(corpus: Path, cache: Path, name: str) -> tuple[float, float]:
        env["ZOO_CACHE_DIR"] = os.fspath(cache)
        command = ["fit", "--config", "configs/gpt_clm.yaml", "--config", "configs/debug/smoke.yaml",
                   "--data.init_args.data_files", os.fspath(corpus), "--data.init_args.tokenizer", args.tokenizer,
                   "--data.init_args.vocab_size", "4000", "--data.init_args.cache_dir", os.fspath(cache),
                   "--data.init_args.max_documents", "null", "--data.init_args.max_seq_len", str(args.max_seq_len),
                   "--model.init_args.config.max_seq_len", str(args.max_seq_len),
                   "--trainer.max_steps", str(args.steps), "--trainer.limit_val_batches", "2",
                   "--trainer.default_root_dir", os.fspath(root / "runs"),
                   "--checkpoint.dirpath", os.fspath(root / "runs" / f"ckpt-{name}")]
        _, wall, rss = run_child([sys.executable, "-m", "zoo.cli", *command], env)
        return wall, rss

    for size in sorted(args.sizes_mb):
        corpus, cache = root / f"corpus-{size}mb.txt", root / f"cache-{size}mb"
        if not corpus.exists():
            write_corpus(corpus, size)
        if args.cold_fit:
            fresh = root / f"cold-cache-{size}mb"
            shutil.rmtree(fresh, ignore_errors=True)
            cold.append((size, *fit(corpus, fresh, f"cold-{size}")))
            shutil.rmtree(fresh, ignore_errors=True)
        env["ZOO_CACHE_DIR"] = os.fspath(cache)
        stdout, prep_wall, prep_rss = run_child(
            [sys.executable, "-c", _PREPARE, os.fspath(corpus), args.tokenizer, os.fspath(cache)], env)
        timing = json.loads(stdout.strip().splitlines()[-1])
        fit_wall, fit_rss = fit(corpus, cache, str(size))
        rows.append((size, timing["tokens"], timing["tokenizer_s"], timing["shards_s"],
                     timing["tokens"] / timing["shards_s"], prep_rss, prep_wall, fit_rss, fit_wall))
    print(f"\ntokenizer: {args.tokenizer}; fit on {args.max_seq_len}-token blocks; peak RSS of fresh processes "
          f"(ru_maxrss)\n")
    print("| corpus MB | tokens | tokenizer s | shards s | tokens/s | prepare peak RSS GB | prepare wall s "
          "| fit peak RSS GB | fit wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, tokens, tok_s, shard_s, rate, prss, pwall, frss, fwall in rows:
        print(f"| {size} | {tokens:,} | {tok_s:.1f} | {shard_s:.1f} | {rate:,.0f} | {prss:.2f} | {pwall:.0f} "
              f"| {frss:.2f} | {fwall:.0f} |")
    if cold:
        print("\n`zoo fit` from an empty cache (tokenizer, shards and the steps in one process)\n")
        print("| corpus MB | peak RSS GB | wall s |\n|---:|---:|---:|")
        for size, wall, rss in cold:
            print(f"| {size} | {rss:.2f} | {wall:.0f} |")
    if args.sampler_blocks:
        sampler_table(args.sampler_blocks, env)


if __name__ == "__main__":
    main()
