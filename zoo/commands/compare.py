"""``zoo compare``: train families or ablation variants on tasks under a matched budget and write a
results table and plots (see ``zoo.compare`` for the file format).

    zoo compare --config configs/compare/seq2seq_families.yaml
    zoo compare --config configs/compare/lm_ablations.yaml --scale 2 --set train.batch_size=64
"""

from __future__ import annotations

import argparse
import sys

from zoo.compare import load_comparison, run_comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo compare",
        description="Compare architectures on tasks: same data, tokenizer and budget for every entry, several seeds; "
        "writes results.{jsonl,csv,json,md} and plots/ to the output directory, and resumes an interrupted run.",
    )
    parser.add_argument("--config", required=True, help="comparison YAML (see configs/compare/)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply training length and the parameter target (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the file, e.g. train.max_steps=100 or model.embed_dim=128 "
                        "(repeatable; values are YAML)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the file's seeds")
    parser.add_argument("--output-dir", help="where results go (default: the file's output_dir)")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results and train everything again")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the file and print each run's size; train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a comparison; bad input raises ``ValueError`` (``zoo`` prints it as one line)."""
    args = build_parser().parse_args(argv)
    comparison = load_comparison(args.config, overrides=args.set, scale=args.scale, output_dir=args.output_dir,
                                 seeds=args.seeds)
    run_comparison(comparison, fresh=args.fresh, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"zoo compare: error: {error}")
