"""A study expanded into zoo fit runs. Every entry × task × seed becomes one ``zoo fit`` config —
model (the family's task, its config with the study's fields and the matched sizes), data (the task's
zoo fit data module, split and shuffled by the seed) and trainer — written to its run directory as
``fit.yaml``, which retrains the run alone::

    OMP_NUM_THREADS=1 zoo fit --config <output_dir>/runs/<task>/<entry>/seed<k>/fit.yaml

**Pairing.** The entries' runs on seed ``k`` share that seed whole: the data module's ``seed: k`` (the
split, the order of the training batches, the random masks) and ``seed_everything: k`` (the initial
weights — the same values wherever two entries build parameters of the same shapes in the same order
— and dropout). So ``entry - baseline`` on seed ``k`` cancels the luck of the split and the data order,
and two entries that differ only in their names train to bitwise the same weights. A repeat of the
baseline (``repeat_baseline``) keeps the data seed and moves the initialisation seed
(``init_seed``): see ``zoo.compare.statistics`` for why that is the noise floor.

**Grids.** An entry with a grid (a list where the study gives one value: ``train: {lr: [1e-3, 2e-3]}``)
runs every grid point on the tuning seeds (``Tune``) under ``<entry>/<point>/seed<k>``; once those are
done, its other seeds run at the chosen point (``choices``, made by ``zoo.compare.grid.choose``).

Planning builds each task's data once per seed (the tokenizer lands in zoo fit's cache, where the
runs find it), lays every example out in each family's format (``zoo.tasks.formats``) to size the
position tables and to count what a training example costs (tokens; FLOPs by ``zoo.flops``), and
refuses in one line, before anything trains, a pair a family cannot run or a size no width reaches.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.compare.budget import match_parameters, non_embedding_parameters
from zoo.compare.config import Comparison, Entry, TrainSettings
from zoo.compare.tasks import DATA_MODULES, TaskSpec
from zoo.flops import batch_tokens, training_flops
from zoo.models.config import TransformerConfig
from zoo.models.registry import Family, family_of, get_family
from zoo.tasks.formats import format_of

SPLITS = ("train", "validation", "test")
#: The zoo fit task of each kind of task, per base family; a family missing here cannot run that kind.
TASKS: dict[str, dict[str, str]] = {
    "seq2seq": {"gpt": "zoo.tasks.InstructionLM", "t5": "zoo.tasks.InstructionSeq2Seq",
                "bert": "zoo.tasks.InstructionMLM"},
    "classification": {"gpt": "zoo.tasks.GPTClassifier", "t5": "zoo.tasks.T5Classifier",
                       "bert": "zoo.tasks.BertClassifier"},
    "lm": {"gpt": "zoo.tasks.CausalLM"},
}
#: Config fields zoo fit links from the data's tokenizer (a study's value for them is not used).
LINKED = ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id")
WHY_NOT = {"lm": "the lm task trains zoo fit's causal language model, which needs a decoder (gpt, llama); an "
                 "encoder sees the whole block and an encoder-decoder's language model is span corruption"}


#: A repeat ``r`` of the baseline initialises from ``seed + INIT_SEED_STEP * r`` (its data seed stays ``seed``).
INIT_SEED_STEP = 1000
#: (task name, entry name) -> the grid point the entry runs at on its other seeds.
Choices = dict[tuple[str, str], dict[str, Any]]


def init_seed(seed: int, repeat: int) -> int:
    """The initialisation (``seed_everything``) seed of repeat ``repeat`` of the baseline on ``seed``."""
    return seed + INIT_SEED_STEP * repeat


def grid_points(entry: Entry) -> list[dict[str, Any]]:
    """Every combination of the entry's grid values (``[{}]`` without a grid), in the order written."""
    return [dict(zip(entry.grid, values, strict=True)) for values in itertools.product(*entry.grid.values())]


def point_label(point: dict[str, Any]) -> str:
    """``lr=0.002`` (``,`` between keys); empty for no grid."""
    def show(value: Any) -> str:
        # repr: the shortest text that reads back as the same float, so two values never share a directory
        return repr(value) if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)

    return ",".join(f"{key.split('.', 1)[1]}={show(value)}" for key, value in point.items())


@dataclass
class Run:
    """One entry × task × seed (× grid point): where it lives, its zoo fit config and its planned size."""

    entry: Entry
    task: TaskSpec
    seed: int
    dir: Path
    fit_config: dict[str, Any]
    params: int
    active_params: int
    steps: int
    tokens: int
    flops: float
    num_classes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    point: dict[str, Any] = field(default_factory=dict)

    @property
    def point_label(self) -> str:
        return point_label(self.point)

    @property
    def name(self) -> str:
        """``<task>/<entry>/seed<k>`` (``<task>/<entry>/<point>/seed<k>`` with a grid): what ``--only`` globs match."""
        point = f"{self.point_label}/" if self.point else ""
        return f"{self.task.name}/{self.entry.name}/{point}seed{self.seed}"

    @property
    def label(self) -> str:
        point = f" × {self.point_label}" if self.point else ""
        return f"{self.entry.name}{point} × {self.task.name} × seed {self.seed}"

    @property
    def init_seed(self) -> int:
        return int(self.fit_config["seed_everything"])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+/-]", "_", name)


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class _TaskData:
    """One task's zoo fit data module for one seed, read in the planning process: its tokenizer and
    examples, laid out one at a time in each shape's format."""

    def __init__(self, task: TaskSpec, seed: int, cache_dir: str | None) -> None:
        self.task, self.kind = task, task.kind
        self.args = {**task.data_args(), **({"cache_dir": os.fspath(cache_dir)} if cache_dir else {})}
        extra = {} if self.kind == "lm" else {"shape": "decoder"}  # any shape: the examples are what is read
        try:
            self.module = _import(DATA_MODULES[self.kind])(**self.args, seed=seed, **extra)
            self.tokenizer = self.module.tokenizer
            self.examples = {} if self.kind == "lm" else {s: self.module.encoded(s) for s in self._splits()}
        except (ValueError, FileNotFoundError) as error:
            raise ValueError(f"task {task.name!r}: {error}") from None
        self.labels = list(self.module.labels) if self.kind == "classification" else []
        self.pad = self.tokenizer.pad_id  # a layout's shape depends on lengths only

    def _splits(self) -> list[str]:
        self.module.raw_examples("train")
        return [s for s in SPLITS if s in self.module._splits]

    def batches(self, shape: str, split: str) -> list[tuple[dict[str, torch.Tensor], int]]:
        """The examples of ``split`` as batches of one in ``shape``'s format (unpadded: what each
        costs), one per distinct length with how many examples have it."""
        if self.kind == "lm":
            return [({"input_ids": torch.zeros(1, self.args["max_seq_len"], dtype=torch.long)}, 1)]
        layout = format_of(shape)(self.tokenizer)
        if self.kind == "seq2seq":
            lengths = Counter((len(s), len(t)) for s, t in self.examples[split])
            return [(layout.seq2seq([([self.pad] * s, [self.pad] * t)]), n) for (s, t), n in lengths.items()]
        lengths = Counter(len(ids) for ids, _ in self.examples[split])
        return [(layout.classification([[self.pad] * length]), n) for length, n in lengths.items()]

    def check(self, shape: str, what: str) -> None:
        """Refuse in one line a family shape that cannot lay out this data."""
        if self.kind == "seq2seq":
            layout = format_of(shape)(self.tokenizer)
            for split, pairs in self.examples.items():
                try:
                    layout.check_pairs(pairs, f"{split} example")
                except ValueError as error:
                    raise ValueError(f"{what}: {error}; leave the pair out with the entry's tasks: [...] list") \
                        from None

    def data_args(self, positions: int, batch_size: int, eval_batch_size: int, seed: int) -> dict[str, Any]:
        args = {**self.args, "seed": seed, "batch_size": batch_size}
        if self.kind == "lm":
            return args
        args.update(max_seq_len=positions, eval_batch_size=eval_batch_size)
        if self.kind == "seq2seq":
            args["max_response_len"] = self.max_response_len
        return args

    @property
    def max_response_len(self) -> int:
        return max(2, 1 + max(len(t) for pairs in self.examples.values() for _, t in pairs))


def _positions(data: _TaskData, shape: str) -> int:
    """The longest input any stack reads (what a learned position table must hold), every split."""
    if data.kind == "lm":
        return data.args["max_seq_len"]
    widths = [max(b["input_ids"].shape[1], b["decoder_input_ids"].shape[1] if "decoder_input_ids" in b else 0)
              for split in data.examples for b, _ in data.batches(shape, split)]
    longest = max(widths)
    return max(longest, data.max_response_len + 1) if data.kind == "seq2seq" else longest


def _cost(data: _TaskData, shape: str, config: TransformerConfig) -> tuple[float, float]:
    """Mean tokens and training FLOPs (``zoo.flops``) of one training example, unpadded."""
    lm_head = data.kind != "classification"
    batches = data.batches(shape, "train")
    count = sum(n for _, n in batches)
    tokens = sum(n * batch_tokens(b) for b, n in batches)
    flops = sum(n * training_flops(config, b, lm_head=lm_head) for b, n in batches)
    return tokens / count, flops / count


def _points(comparison: Comparison, entry: Entry, task: TaskSpec, seed: int, choices: Choices) -> list[dict[str, Any]]:
    """The grid points ``entry`` runs on ``seed`` now: all of them on a tuning seed, the chosen one on
    the others (none while it is not chosen); a repeat runs at its baseline's choice."""
    if entry.repeat:
        source = next(e for e in comparison.entries if e.name == entry.baseline)
        if not source.grid:
            return [{}]
        chosen = choices.get((task.name, source.name))
        return [] if chosen is None else [chosen]
    if not entry.grid:
        return [{}]
    if seed in comparison.seeds[:comparison.tune.count(len(comparison.seeds))]:
        return grid_points(entry)
    chosen = choices.get((task.name, entry.name))
    return [] if chosen is None else [chosen]


def waiting(comparison: Comparison, choices: Choices) -> int:
    """How many runs of the study wait for a grid choice not made yet."""
    count = 0
    tuned = comparison.tune.count(len(comparison.seeds))
    for task in comparison.tasks:
        for entry in comparison.entries:
            if entry.tasks is not None and task.name not in entry.tasks:
                continue
            source = next(e for e in comparison.entries if e.name == entry.baseline) if entry.repeat else entry
            if source.grid and (task.name, source.name) not in choices:
                count += len(comparison.seeds) - (0 if entry.repeat else tuned)
    return count


def plan(comparison: Comparison, cache_dir: str | os.PathLike[str] | None = None,
         choices: Choices | None = None) -> list[Run]:
    """Every run of the study that can be planned now, in table order: task, then seed, then entry
    (then grid point) — so the entries of one table finish together. An entry with a grid runs every
    point on the tuning seeds; its other seeds (and its repeats) only once ``choices`` holds its point.

    Raises:
        ValueError: A task's data, an entry that cannot run a task, a config field, or a budget no size
            meets; one line naming it.
    """
    runs: list[Run] = []
    sizes: dict[tuple, tuple[TransformerConfig, int, int]] = {}
    choices = choices or {}
    for task in comparison.tasks:
        entries = [e for e in comparison.entries if e.tasks is None or task.name in e.tasks]
        for entry in entries:  # what a family cannot run at all, before any data is built
            family = get_family(entry.family)
            if family_of(family.config_class).name not in TASKS[task.kind]:
                raise ValueError(f"entry {entry.name!r} cannot run task {task.name!r}: {WHY_NOT[task.kind]}; leave "
                                 f"the pair out with the entry's tasks: [...] list")
        for seed in comparison.seeds:
            data = _TaskData(task, seed, cache_dir)
            for entry in entries:
                family = get_family(entry.family)
                data.check(family.shape, f"entry {entry.name!r} cannot run task {task.name!r}")
                positions = _positions(data, family.shape)
                for point in _points(comparison, entry, task, seed, choices):
                    runs.append(_run(comparison, entry, family, task, data, seed, point, positions, sizes))
    return runs


def _run(comparison: Comparison, entry: Entry, family: Family, task: TaskSpec, data: _TaskData, seed: int,
         point: dict[str, Any], positions: int, sizes: dict[tuple, tuple[TransformerConfig, int, int]]) -> Run:
    """The run of ``entry`` on ``task`` and ``seed`` at grid ``point``."""
    budget = comparison.budget
    settings = dataclasses.replace(comparison.train, **entry.train,
                                   **{k[6:]: v for k, v in point.items() if k.startswith("train.")})
    label = point_label(point)
    what = f"entry {entry.name!r}{f' at {label}' if label else ''} on task {task.name!r}"
    overrides = {k[6:]: v for k, v in point.items() if k.startswith("model.")}
    given = {k: v for k, v in {**comparison.model, **entry.config, **overrides}.items() if k not in LINKED}
    fields = {**given, "max_seq_len": max(int(given.get("max_seq_len") or 0), positions)}
    key = (entry.name, task.name, repr(sorted(fields.items())), len(data.labels), data.tokenizer.fingerprint)
    if key not in sizes:
        sizes[key] = _size(family, fields, data, budget, what)
    config, params, active = sizes[key]
    tokens, flops = _cost(data, family.shape, config)
    steps = settings.max_steps
    if budget.tokens or budget.flops:
        per_step = settings.batch_size * (tokens if budget.tokens else flops)
        steps = max(1, math.ceil((budget.tokens or budget.flops) / per_step))
    run_dir = comparison.output_dir / "runs" / _slug(task.name) / _slug(entry.name)
    run_dir = (run_dir / _slug(label) if label else run_dir) / f"seed{seed}"
    name = "-".join([comparison.name, task.name, entry.name, *([label] if label else []), f"seed{seed}"])
    fit = _fit_config(comparison, settings, entry, family, task, data, config, fields, steps, seed, name)
    return Run(entry, task, seed, run_dir, fit, params, active, steps, round(steps * settings.batch_size * tokens),
               steps * settings.batch_size * flops, len(data.labels), point=dict(point))


def _size(family: Family, fields: dict[str, Any], data: _TaskData, budget: Any,
          what: str) -> tuple[TransformerConfig, int, int]:
    """The entry's config (sizes matched to ``budget.params``), its non-embedding and active parameters."""
    tokenizer = data.tokenizer
    linked = dict(zip(LINKED, (tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id),
                      strict=True))
    num_classes = len(data.labels)

    def make(values: dict[str, Any]) -> TransformerConfig:
        try:
            return family.make_config(**{**values, **linked})
        except (ValueError, TypeError) as error:
            raise ValueError(f"{what}: {error}") from None

    def count(config: TransformerConfig) -> int:
        return non_embedding_parameters(family.name, config, num_classes, active=True)

    if budget.params:
        config, active = match_parameters(make, count, fields, budget, what)
    else:
        config = make(fields)
        active = count(config)
    return config, non_embedding_parameters(family.name, config, num_classes), active


def _fit_config(comparison: Comparison, s: TrainSettings, entry: Entry, family: Family, task: TaskSpec,
                data: _TaskData, config: TransformerConfig, fields: dict[str, Any], steps: int, seed: int,
                name: str) -> dict[str, Any]:
    """The run's zoo fit config (what ``fit.yaml`` holds): recipe ``s``, data seed ``seed``, and the
    initialisation seed ``init_seed(seed, entry.repeat)``."""
    matched = {k: getattr(config, k) for k in comparison.budget.match} if comparison.budget.params else {}
    model_config = {**({"preset": family.preset} if family.preset else {}), **fields, **matched,
                    "max_seq_len": config.max_seq_len}
    every = min(s.val_every, steps)
    return {
        "seed_everything": init_seed(seed, entry.repeat),
        "trainer": {"max_steps": steps, "val_check_interval": every, "check_val_every_n_epoch": None,
                    "num_sanity_val_steps": 0, "log_every_n_steps": min(every, 50),
                    "gradient_clip_val": s.gradient_clip or None, "accelerator": s.accelerator, "devices": 1,
                    "precision": s.precision, "enable_model_summary": False},
        "model": {"class_path": TASKS[task.kind][family_of(family.config_class).name],
                  "init_args": {"config": model_config, "lr": s.lr, "weight_decay": s.weight_decay,
                                "betas": list(s.betas), "warmup_steps": s.warmup_steps,
                                "min_lr_ratio": s.min_lr_ratio, "max_steps": steps}},
        "data": {"class_path": DATA_MODULES[task.kind],
                 "init_args": data.data_args(config.max_seq_len, s.batch_size, s.eval_batch_size, seed)},
        "last_checkpoint": {"every_n_train_steps": every},  # a killed run loses at most one validation's steps
        "run": {"name": name.replace("/", "-")},
    }
