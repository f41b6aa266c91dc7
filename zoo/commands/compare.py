"""``zoo compare``: train families or ablation variants on tasks under a matched budget and write a
results table and plots (see ``zoo.compare`` for the file format); every run is a ``zoo fit`` run.

    zoo compare --config configs/compare/seq2seq_families.yaml --jobs 2
    zoo compare --config configs/compare/lm_ablations.yaml --scale 2 --set train.batch_size=64
    zoo compare --config configs/compare/lm_modern.yaml --dry-run
    zoo compare --config configs/compare/lm_modern.yaml --launcher slurm --jobs 16 --slurm timeout_min=60
    zoo compare report runs/compare/variants                       # redraw results.md and plots/
    zoo compare report runs/compare/variants --readme README.md    # ... and the README's table
"""

from __future__ import annotations

import argparse
import shlex
import sys

import yaml

from zoo.compare import load_comparison, render, run_comparison, write_readme
from zoo.compare.launch import check_launcher


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo compare",
        description="Compare architectures on tasks: same data, tokenizer and budget for every entry, several seeds. "
        "Every run is a zoo fit run in its own directory (<output-dir>/runs/<task>/<entry>/seed<k>, with the fit.yaml "
        "that retrains it alone); results.{csv,json,md} and plots/ are drawn from them: every entry paired by seed "
        "with the study's baseline (verdicts need >= 3 seeds), grids tuned on validation. Rerunning the command skips "
        "finished runs and resumes stopped ones. 'zoo compare report DIR [--readme FILE]' redraws the report.",
    )
    parser.add_argument("--config", required=True, help="comparison YAML (see configs/compare/)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply training length and the parameter target (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the file, e.g. train.max_steps=100 or model.embed_dim=128 "
                        "(repeatable; values are YAML)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the file's seeds")
    parser.add_argument("--output-dir", help="where results go (default: the file's output_dir)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete what the runs' directories hold and train them again")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the file and print each run and its size (parameters, steps, tokens, FLOPs); "
                        "train nothing")
    parser.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                        help="train only the runs named <task>/<entry>/seed<k> that match, e.g. 'copy/*' or '*/gpt/*'")
    parser.add_argument("--launcher", default="local", help="local (processes on this machine) or slurm (a job "
                        "array through submitit)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (local: each with the study's "
                        "train.threads CPU threads, default 1; null shares the cores among them. slurm: the array's "
                        "parallelism)")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="a submitit executor parameter for --launcher slurm, e.g. timeout_min=60, "
                        "slurm_partition=gpu, gpus_per_node=1 (repeatable; cluster=local runs through "
                        "submitit's local executor)")
    return parser


def build_report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo compare report",
        description="Redraw a study's results.md, results.csv and plots/ from its results.json alone (nothing "
        "trains); --readme also writes its table into a README, between the lines '<!-- zoo compare NAME: begin -->' "
        "and '<!-- zoo compare NAME: end -->'.",
    )
    parser.add_argument("directory", help="the study's output directory (holding results.json)")
    parser.add_argument("--readme", metavar="FILE", help="a README holding the study's markers, e.g. README.md")
    return parser


def report(argv: list[str]) -> int:
    """``zoo compare report <dir> [--readme FILE]``."""
    args = build_report_parser().parse_args(argv)
    summary = render(args.directory)
    print(f"redrew {args.directory}/results.md, results.csv and plots/ from results.json")
    if args.readme:
        path = write_readme(summary, args.directory, args.readme)
        print(f"wrote the table of {summary['name']} into {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a comparison (or ``report``: redraw one); bad input raises ``ValueError`` (``zoo`` prints it as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return report(argv[1:])
    args = build_parser().parse_args(argv)
    check_launcher(args.launcher, args.jobs)
    slurm = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm {item!r}: expected KEY=VALUE, e.g. timeout_min=60")
        slurm[key] = yaml.safe_load(value)
    comparison = load_comparison(args.config, overrides=args.set, scale=args.scale, output_dir=args.output_dir,
                                 seeds=args.seeds)
    run_comparison(comparison, fresh=args.fresh, dry_run=args.dry_run, only=args.only, launcher=args.launcher,
                   jobs=args.jobs, slurm=slurm, command=shlex.join(["zoo", "compare", *argv]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"zoo compare: error: {error}")
