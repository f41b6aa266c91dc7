"""Pretraining data at scale: peak memory and tokenisation speed against corpus size.

For each size, a text corpus of random words (lines of 5-30 words) is generated on disk, then two
fresh processes run, each measured by its peak resident set size (`ru_maxrss` of the child):

1. prepare: `TextDataModule.prepare_data()` — checks the file, trains the tokenizer (char: one
   streamed pass; SentencePiece: a bounded sample), streams the corpus into token shards;
2. fit: `zoo fit` for a few steps on those shards (GPT + the smoke overlay).

Flat memory means both peaks stay the same as the corpus grows. Run:

    python benchmarks/data.py --sizes-mb 200 1000 [--tokenizer char|sentencepiece] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--tokenizer", choices=["char", "sentencepiece"], default="char")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep corpora and caches here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zoo-data-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    rows = []
    for size in sorted(args.sizes_mb):
        corpus, cache = root / f"corpus-{size}mb.txt", root / f"cache-{size}mb"
        if not corpus.exists():
            write_corpus(corpus, size)
        env["ZOO_CACHE_DIR"] = os.fspath(cache)
        stdout, prep_wall, prep_rss = run_child(
            [sys.executable, "-c", _PREPARE, os.fspath(corpus), args.tokenizer, os.fspath(cache)], env)
        timing = json.loads(stdout.strip().splitlines()[-1])
        fit = ["fit", "--config", "configs/gpt_clm.yaml", "--config", "configs/debug/smoke.yaml",
               "--data.init_args.data_files", os.fspath(corpus), "--data.init_args.tokenizer", args.tokenizer,
               "--data.init_args.vocab_size", "4000", "--data.init_args.cache_dir", os.fspath(cache),
               "--trainer.max_steps", str(args.steps), "--trainer.limit_val_batches", "2",
               "--trainer.default_root_dir", os.fspath(root / "runs"),
               "--checkpoint.dirpath", os.fspath(root / "runs" / f"ckpt-{size}")]
        _, fit_wall, fit_rss = run_child([sys.executable, "-m", "zoo.cli", *fit], env)
        rows.append((size, timing["tokens"], timing["tokenizer_s"], timing["shards_s"],
                     timing["tokens"] / timing["shards_s"], prep_rss, prep_wall, fit_rss, fit_wall))
    print(f"\ntokenizer: {args.tokenizer}; peak RSS of fresh processes (ru_maxrss)\n")
    print("| corpus MB | tokens | tokenizer s | shards s | tokens/s | prepare peak RSS GB | prepare wall s "
          "| fit peak RSS GB | fit wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, tokens, tok_s, shard_s, rate, prss, pwall, frss, fwall in rows:
        print(f"| {size} | {tokens:,} | {tok_s:.1f} | {shard_s:.1f} | {rate:,.0f} | {prss:.2f} | {pwall:.0f} "
              f"| {frss:.2f} | {fwall:.0f} |")


if __name__ == "__main__":
    main()
