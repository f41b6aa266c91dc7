"""LoRA against full fine-tuning (and a trained head alone) on the built-in classification task —
which part of the Python documentation a passage comes from (``zoo.data.LabelledTextDataModule``).

Each variant starts from the same weights, sees the same batches in the same order and trains the
same number of AdamW steps; its learning rate is the one its config uses (full and head-only
``configs/*_classify.yaml``, LoRA ``configs/finetune/lora.yaml``). Reported per variant: trainable
parameters, peak memory (the process's peak resident set: each variant runs in a fresh process;
on CUDA ``torch.cuda.max_memory_allocated``), the gradient + AdamW state the trainable weights need,
the median training step time, and validation accuracy and macro-F1 after the last step.

    zoo fit --config configs/bert_mlm.yaml                          # pretrain first (a few minutes)
    python benchmarks/finetune.py --pretrained runs/bert_mlm
    python benchmarks/finetune.py --family gpt --pretrained runs/gpt_clm --steps 200

Without ``--pretrained`` the body is random (the costs are the same; LoRA's accuracy is not).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {"lr": 5e-4},
    "lora q,v r=8": {"lr": 2e-3, "adapter": {"rank": 8, "alpha": 16, "dropout": 0.05,
                                             "target_modules": ["q_proj", "v_proj"]}},
    "lora all r=8": {"lr": 2e-3, "adapter": {"rank": 8, "alpha": 16, "dropout": 0.05, "target_modules": [
        "q_proj", "k_proj", "v_proj", "out_proj", "up_proj", "gate_proj", "down_proj"]}},  # those the model has
    "head only": {"lr": 2e-3, "freeze": "body"},
}
#: The architecture of configs/*_mlm.yaml / *_clm.yaml / *_span.yaml, for runs without --pretrained.
SCRATCH = dict(max_seq_len=128, embed_dim=128, num_layers=2, num_heads=4)


def build(args: argparse.Namespace, variant: dict[str, Any]) -> tuple[Any, Any]:
    from zoo.adapters import adaptable_names
    from zoo.data.labelled import LabelledTextDataModule
    from zoo.models.registry import get_family
    from zoo.tasks.classification import CLASSIFIERS
    from zoo.tasks.finetune import pretrained_tokenizer

    family = get_family(args.family)
    tokenizer = pretrained_tokenizer(args.pretrained) if args.pretrained else None
    data = LabelledTextDataModule(tokenizer_path=tokenizer, vocab_size=2000, max_seq_len=args.max_seq_len,
                                  batch_size=args.batch_size, eval_batch_size=100, shape=family.shape, seed=args.seed)
    data.setup("fit")
    config = family.make_config(**SCRATCH, vocab_size=data.vocab_size, pad_token_id=data.pad_id,
                                bos_token_id=data.bos_id, eos_token_id=data.eos_id, dropout=0.1)
    options = {k: v for k, v in variant.items() if k != "lr"}
    if "adapter" in options:  # gate_proj exists only with a gated feed-forward (SwiGLU, GeGLU)
        present = set(adaptable_names(family.model_class(config)))
        targets = [t for t in options["adapter"]["target_modules"] if t in present]
        options["adapter"] = {**options["adapter"], "target_modules": targets}
    classifier = "gpt" if family.shape == "decoder" else args.family
    task = CLASSIFIERS[classifier](config, labels=data.labels, pretrained=args.pretrained, lr=variant["lr"],
                                   weight_decay=0.01, **options)
    return task, data


def evaluate(task: Any, data: Any, device: torch.device) -> dict[str, float]:
    task.eval()
    metrics = task.val_metrics
    for metric in metrics.values():
        metric.reset()
    with torch.no_grad():
        for batch in data.val_dataloader():
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = task(batch["input_ids"], batch["attention_mask"]).float()
            for metric in metrics.values():
                metric.update(logits, batch["labels"])
    task.train()
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def run_variant(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Train one variant in this process and measure it."""
    from zoo.adapters import count_parameters
    from zoo.tasks.base import adamw_with_schedule

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    task, data = build(args, VARIANTS[name])
    task.to(device).train()
    trainable, total = count_parameters(task)
    h = task.hparams
    optim = adamw_with_schedule(task.parameter_groups(), lr=h.lr, betas=h.betas, eps=h.eps,
                                warmup_steps=args.warmup_steps, total_steps=args.steps, min_lr_ratio=0.1)
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, step = [], 0
    while step < args.steps:
        for batch in data.train_dataloader():
            batch = {k: v.to(device) for k, v in batch.items()}
            start = time.perf_counter()
            logits = task(batch["input_ids"], batch["attention_mask"]).float()
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in task.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            step += 1
            if step == args.steps:
                break
    metrics = evaluate(task, data, device)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    skip = min(10, len(times) // 5)  # first steps pay for allocation and kernel choice
    return {
        "variant": name, "trainable": trainable, "total": total, "peak_mb": peak_mb,
        "state_mb": trainable * 4 * 3 / 2**20,  # fp32 gradient + AdamW's two moments
        "step_ms": 1000 * statistics.median(times[skip:]), "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
    }


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    source = args.pretrained or "random weights"
    lines = [
        f"{args.family} classifier from {source}: {args.steps} steps of batch {args.batch_size}, "
        f"built-in python_docs task (5 classes), {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "",
        "| variant | trainable params | % of total | peak memory (MB) | grad + AdamW state (MB) | step time (ms) "
        "| val accuracy | val macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.2f} % | "
                     f"{r['peak_mb']:.0f} | {r['state_mb']:.2f} | {r['step_ms']:.1f} | {r['accuracy']:.3f} | "
                     f"{r['macro_f1']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="bert", choices=["bert", "gpt", "llama", "t5"])
    parser.add_argument("--pretrained", default=None, help="a zoo checkpoint or Hugging Face directory")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_variant(args, args.one)))
        return
    rows = []
    for name in args.variants:  # each in a fresh process, so its peak memory is its own
        command = [sys.executable, __file__, *sys.argv[1:], "--one", name]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if done.returncode != 0:
            raise SystemExit(f"variant {name!r} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: done ({rows[-1]['step_ms']:.1f} ms/step, accuracy {rows[-1]['accuracy']:.3f})", file=sys.stderr)
    print(table(rows, args))


if __name__ == "__main__":
    main()
