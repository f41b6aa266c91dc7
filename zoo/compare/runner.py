"""Running a comparison: plan every run (all checks before any training), train each one through
Lightning, append its record to ``results.jsonl``, and skip what an earlier, interrupted run finished."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.compare.adapters import RUNNERS, data_lengths, unsupported
from zoo.compare.budget import match_parameters, non_embedding_parameters, steps_for_budget
from zoo.compare.config import Budget, Comparison, Entry
from zoo.compare.data import SuiteDataModule, TaskData
from zoo.compare.modules import SUITE_TASKS, SuiteTask
from zoo.compare.report import summary_line, write_reports
from zoo.compare.tasks import TaskSpec
from zoo.models.config import TransformerConfig
from zoo.models.registry import get_family
from zoo.quiet import quiet_lightning

Log = Callable[[str], None]


@dataclass
class Run:
    """One entry × task × seed, fully resolved."""

    entry: Entry
    task: TaskSpec
    seed: int
    data: TaskData
    config: TransformerConfig
    params: int
    key: str = ""
    fingerprint: str = ""

    @property
    def label(self) -> str:
        return f"{self.entry.name} × {self.task.name} × seed {self.seed}"


def _fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan(comparison: Comparison, cache_dir: str | os.PathLike[str] | None = None) -> list[Run]:
    """Build every task's data, check every entry can run every task it is given, and resolve each
    entry's config (vocabulary and lengths from the data, sizes from the budget). Order: task, then
    seed, then entry — so the entries of one table finish together.

    Raises:
        ValueError: An entry cannot run a task, a config field is wrong, or no size meets the budget.
    """
    runs = []
    sizes: dict[tuple[Any, ...], tuple[TransformerConfig, int]] = {}
    for task in comparison.tasks:
        data_per_seed = {seed: task.build(seed, cache_dir) for seed in comparison.seeds}
        for entry in comparison.entries:
            if entry.tasks is not None and task.name not in entry.tasks:
                continue
            equal_length = all(d.equal_length for d in data_per_seed.values())
            reason = unsupported(entry.family, task.kind, equal_length)
            if reason:
                raise ValueError(f"entry {entry.name!r} cannot run task {task.name!r}: {reason}; leave the pair out "
                                 f"with the entry's tasks: [...] list")
        for seed, data in data_per_seed.items():
            for entry in comparison.entries:
                if entry.tasks is not None and task.name not in entry.tasks:
                    continue
                family = get_family(entry.family)
                num_classes = len(data.label_names) if data.kind == "classification" else 0
                fields = {**comparison.model, **entry.config, "vocab_size": data.tokenizer.vocab_size,
                          "pad_token_id": data.tokenizer.pad_id, "bos_token_id": data.tokenizer.bos_id,
                          "eos_token_id": data.tokenizer.eos_id,
                          "max_seq_len": max(int((comparison.model | entry.config).get("max_seq_len") or 0),
                                             RUNNERS[family.shape].max_positions(data.kind, data_lengths(data)))}
                what = f"entry {entry.name!r} on task {task.name!r}"
                key = (entry.name, task.name, json.dumps(fields, sort_keys=True, default=str), num_classes)
                if key not in sizes:
                    def make(values: dict[str, Any], family=family, what=what) -> TransformerConfig:
                        try:
                            return family.make_config(**values)
                        except (ValueError, TypeError) as error:
                            raise ValueError(f"{what}: {error}") from None

                    def count(config: TransformerConfig, family=family, num_classes=num_classes) -> int:
                        return non_embedding_parameters(family.name, config, num_classes)

                    if comparison.budget.params:
                        sizes[key] = match_parameters(make, count, fields, comparison.budget, what)
                    else:
                        config = make(fields)
                        sizes[key] = config, count(config)
                config, params = sizes[key]
                run = Run(entry, task, seed, data, config, params, key=f"{entry.name}|{task.name}|{seed}")
                run.fingerprint = _fingerprint({
                    "family": entry.family, "config": config.to_dict(), "task": task.options(), "seed": seed,
                    "train": {k: v for k, v in dataclasses.asdict(comparison.train).items() if k != "threads"},
                    "budget": dataclasses.asdict(comparison.budget),
                })
                runs.append(run)
    return runs


# ---------------------------------------------------------------------------------------------
# Training one run


class _PeakMemory:
    """Peak memory of one run: ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU the peak
    resident set of this process (Linux resets the high-water mark through /proc/self/clear_refs,
    so it covers this run only; elsewhere it is the process's ``getrusage`` maximum so far)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.kind = "cuda max allocated" if cuda else "cpu peak rss"

    def __enter__(self) -> _PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.kind = "cpu max rss of the process"
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.cuda:
            self.megabytes = torch.cuda.max_memory_allocated() / 2**20
            return
        status = Path("/proc/self/status")
        peak_kb = None
        if self.kind == "cpu peak rss" and status.is_file():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
        if peak_kb is None:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        self.megabytes = peak_kb / 1024


def _callbacks(budget: Budget) -> list[Any]:
    import lightning as L

    class Curve(L.Callback):
        """Validation metrics against training tokens and FLOPs, one point per validation."""

        def __init__(self) -> None:
            self.points: list[dict[str, float]] = []

        def on_validation_end(self, trainer: L.Trainer, module: SuiteTask) -> None:
            if trainer.sanity_checking:
                return
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
            self.points.append({"step": trainer.global_step, "tokens": module.tokens_seen,
                                "flops": module.flops_seen, **metrics})

    class StopAtBudget(L.Callback):
        """End training once the token or FLOP budget is spent."""

        def on_train_batch_end(self, trainer: L.Trainer, module: SuiteTask, *args: Any) -> None:
            if (budget.tokens and module.tokens_seen >= budget.tokens) or (
                budget.flops and module.flops_seen >= budget.flops
            ):
                trainer.should_stop = True

    return [Curve(), StopAtBudget()]


def train_run(run: Run, comparison: Comparison) -> dict[str, Any]:
    """Train and evaluate one run; returns its result record."""
    import lightning as L


    settings = comparison.train
    L.seed_everything(run.seed, verbose=False)
    kwargs: dict[str, Any] = {"num_classes": len(run.data.label_names)} if run.data.kind == "classification" else {}
    module = SUITE_TASKS[run.data.kind](
        run.entry.family, run.config.to_dict(), run.data.tokenizer, lr=settings.lr,
        weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps,
        min_lr_ratio=settings.min_lr_ratio, **kwargs,
    )
    steps = steps_for_budget(module, run.data, settings.batch_size, comparison.budget, settings.max_steps)
    module.hparams.max_steps = steps
    datamodule = SuiteDataModule(run.data, settings.batch_size, settings.eval_batch_size, run.seed)
    curve, stop = _callbacks(comparison.budget)
    common = dict(accelerator=settings.accelerator, devices=1, precision=settings.precision, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer = L.Trainer(
        max_steps=math.ceil(steps * 1.25) if (comparison.budget.tokens or comparison.budget.flops) else steps,
        max_epochs=-1, val_check_interval=settings.val_every, check_val_every_n_epoch=None,
        num_sanity_val_steps=0, gradient_clip_val=settings.gradient_clip or None, callbacks=[curve, stop], **common,
    )
    cuda = trainer.strategy.root_device.type == "cuda"
    with _PeakMemory(cuda) as memory:
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        train_time = time.perf_counter() - start
        evaluator = L.Trainer(**common)
        start = time.perf_counter()
        metrics = {**evaluator.validate(module, datamodule=datamodule, verbose=False)[0],
                   **evaluator.test(module, datamodule=datamodule, verbose=False)[0]}
        eval_time = time.perf_counter() - start
    points = curve.points
    if not points or points[-1]["step"] != trainer.global_step:
        points.append({"step": trainer.global_step, "tokens": module.tokens_seen, "flops": module.flops_seen,
                       **{k: v for k, v in metrics.items() if k.startswith("val_")}})
    return {
        "key": run.key, "fingerprint": run.fingerprint, "comparison": comparison.name,
        "entry": run.entry.name, "family": run.entry.family, "task": run.task.name, "kind": run.data.kind,
        "seed": run.seed, "params": module.num_parameters(), "config": run.config.to_dict(),
        "steps": trainer.global_step, "tokens": module.tokens_seen, "flops": module.flops_seen,
        "train_time_s": round(train_time, 2), "eval_time_s": round(eval_time, 2),
        "peak_mem_mb": round(memory.megabytes, 1), "memory": memory.kind,
        "device": trainer.strategy.root_device.type,
        "metrics": {k: float(v) for k, v in metrics.items()}, "curve": points,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------
# Running a whole comparison


def _parse_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):  # a write cut off mid-character, too
        return None
    return record if isinstance(record, dict) and "key" in record else None


def _rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: a crash leaves the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_results(path: Path, log: Log = print) -> dict[str, dict[str, Any]]:
    """Records of a results.jsonl by key; a later line for a key replaces an earlier one.

    A line that is not a whole record — the last one, when a process was killed while writing it —
    is reported in one warning and cut from the file (atomically), so its run is trained again and
    the next record appended starts on a line of its own instead of being glued to the torn one.
    """
    if not path.is_file():
        return {}
    data = path.read_bytes()
    records: dict[str, dict[str, Any]] = {}
    kept: list[bytes] = []
    torn: list[int] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        record = _parse_record(line)
        if record is None:
            torn.append(number)
            continue
        records[record["key"]] = record
        kept.append(line)
    if torn or (data.strip() and not data.endswith(b"\n")):
        _rewrite(path, b"".join(line + b"\n" for line in kept))
    if torn:
        where = f"line {torn[0]}" if len(torn) == 1 else f"lines {', '.join(map(str, torn))}"
        log(f"warning: {path}: {where} not a complete record (a run interrupted while writing it?); dropped from "
            f"the file, so that run is trained again")
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line of ``path``, starting a new line if the file does not end with one
    (a torn write from another process), and sync it to disk before the next run starts."""
    with open(path, "a+b") as handle:
        if handle.seek(0, os.SEEK_END):
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(json.dumps(record).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def run_comparison(
    comparison: Comparison,
    *,
    fresh: bool = False,
    dry_run: bool = False,
    log: Log = print,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Plan, train what is not done yet, and write the reports.

    Args:
        comparison: From ``load_comparison``.
        fresh: Ignore earlier results in the output directory and train everything.
        dry_run: Check and plan only: print each run's size, train nothing.
        log: Where progress lines go.
        cache_dir: Tokenizer cache (default ``$ZOO_CACHE_DIR`` or ``~/.cache/zoo``).

    Returns:
        The result records of this comparison's runs (finished earlier or now).
    """
    runs = plan(comparison, cache_dir)
    out = comparison.output_dir
    results_path = out / "results.jsonl"
    if dry_run:
        for i, run in enumerate(runs, 1):
            dims = ", ".join(f"{k}={getattr(run.config, k)}" for k in ("embed_dim", "num_layers", "ffn_dim"))
            log(f"[{i}/{len(runs)}] {run.label}: {run.params:,} non-embedding params ({dims})")
        return []
    out.mkdir(parents=True, exist_ok=True)
    if fresh and results_path.exists():
        results_path.unlink()
    done = read_results(results_path, log)
    records: list[dict[str, Any]] = []
    with _threads(comparison.train.threads), quiet_lightning():
        _train_all(comparison, runs, done, records, log)
    write_reports(comparison, records)
    log(f"results: {out / 'results.md'} (table), results.csv, results.json, plots/")
    return records


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_all(comparison: Comparison, runs: list[Run], done: dict[str, dict[str, Any]],
               records: list[dict[str, Any]], log: Log) -> None:
    results_path = comparison.output_dir / "results.jsonl"
    for i, run in enumerate(runs, 1):
        prefix = f"[{i}/{len(runs)}] {run.label}"
        earlier = done.get(run.key)
        if earlier is not None and earlier.get("fingerprint") == run.fingerprint:
            log(f"{prefix} — done earlier, skipped")
            records.append(earlier)
            continue
        note = " (settings changed since the last run: training again)" if earlier is not None else ""
        log(f"{prefix}{note}")
        record = train_run(run, comparison)
        append_record(results_path, record)
        records.append(record)
        log(summary_line(record))
