"""``zoo eval CKPT --tasks ...``: score a zoo model on lm-evaluation-harness tasks, offline.

    zoo eval runs/gpt_clm --tasks zoo_cloze,zoo_next_sentence
    zoo eval runs/bert_mlm/version_0/checkpoints/last.ckpt --tasks zoo_scoring --limit 100
    zoo eval runs/t5_span --tasks zoo_reverse --num_fewshot 5
    HF_DATASETS_OFFLINE=0 zoo eval CKPT --tasks hellaswag,arc_easy   # lm-eval's own tasks, downloaded

CKPT is a zoo checkpoint, a run directory (its newest checkpoint) or a directory ``zoo convert``
wrote. The model runs through ``zoo.eval.harness.ZooLM`` (every family: a masked LM by
pseudo-log-likelihood); the tasks are the zoo's local ones (``zoo.eval.tasks``: ``zoo_local``,
``zoo_scoring``, ``zoo_generation`` and each by name) or any of lm-eval's. Nothing downloads unless
``HF_DATASETS_OFFLINE=0`` is set. lm-eval's results JSON goes to the ``eval/`` directory of the
checkpoint's run (``runs/x/version_0/checkpoints/last.ckpt`` -> ``runs/x/version_0/eval/last_<date>.json``)
or ``--output_path``, and a short table (with the chance level of each local task's metric) is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

WHAT = "zoo eval:"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo eval",
        description="Evaluate a zoo checkpoint (or a `zoo convert` directory) on lm-evaluation-harness tasks: the "
        "zoo's local tasks (zoo_cloze, zoo_next_sentence, zoo_last_word, zoo_paragraphs, zoo_copy, zoo_reverse, "
        "zoo_sort, zoo_addition; tags zoo_local, zoo_scoring, zoo_generation) or lm-eval's own.",
    )
    parser.add_argument("checkpoint", help="a zoo .ckpt, a run directory (its newest checkpoint), or a directory "
                        "written by `zoo convert`")
    parser.add_argument("--tasks", nargs="+", required=True, metavar="TASK",
                        help="task, tag or group names, comma- or space-separated")
    parser.add_argument("--limit", type=float, default=None,
                        help="items per task at most (a fraction of each task when below 1)")
    parser.add_argument("--num_fewshot", type=int, default=None, help="examples before each question")
    parser.add_argument("--batch_size", default="32", help="sequences per forward (masked LM: masked copies)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--output_path", default=None,
                        help="results file (.json, to which lm-eval adds _<date>) or directory; default: "
                        "<run>/eval/<checkpoint name>.json")
    parser.add_argument("--tokenizer", metavar="PATH", help="tokenizer file; default: the one the checkpoint carries")
    parser.add_argument("--max_gen_toks", type=int, default=256,
                        help="new tokens at most for generation tasks that set none")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--seed", type=int, default=1234, help="seeds lm-eval's samplers and the model's sampling")
    return parser


def task_names(values: list[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"{WHAT} --tasks names no task")
    return list(dict.fromkeys(names))


def main(argv: list[str]) -> int:
    """Run ``zoo eval`` on ``argv``; bad input raises a one-line ValueError (``zoo.cli.main`` prints it)."""
    args = build_parser().parse_args(argv)
    from zoo.eval.run import offline_by_default, require_lm_eval

    require_lm_eval()
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"{WHAT} --limit {args.limit:g} must be > 0 (items, or a fraction below 1)")
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise ValueError(f"{WHAT} --num_fewshot {args.num_fewshot} must be >= 0")
    if args.max_gen_toks < 1:
        raise ValueError(f"{WHAT} --max_gen_toks {args.max_gen_toks} must be >= 1")
    if not Path(args.checkpoint).exists():
        raise FileNotFoundError(f"{WHAT} {args.checkpoint}: no such checkpoint file or directory")
    from zoo.checkpoints import run_checkpoint

    checkpoint = str(run_checkpoint(args.checkpoint, WHAT))  # a run directory stands for its newest checkpoint
    from zoo.commands.generate import check_device

    if args.device is not None:
        try:
            check_device(args.device)
        except ValueError as error:
            raise ValueError(f"{WHAT} {error}") from None
    offline_by_default()
    from zoo.eval.harness import ZooLM, parse_batch_size
    from zoo.eval.run import check_output, evaluate, output_file, prepare, table, write_results

    batch_size = parse_batch_size(args.batch_size)
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    output = check_output(output_file(checkpoint, args.output_path))
    prepared = prepare(task_names(args.tasks))  # unknown tasks are refused before the model loads
    lm = ZooLM(checkpoint=checkpoint, tokenizer=args.tokenizer, device=args.device, batch_size=batch_size,
               max_gen_toks=args.max_gen_toks, dtype=args.dtype, what=WHAT)
    results = evaluate(lm, task_names(args.tasks), num_fewshot=args.num_fewshot, limit=limit, seed=args.seed,
                       prepared=prepared)
    written = write_results(results, output)
    print(table(results))
    print(f"zoo eval: results written to {written}")
    return 0
