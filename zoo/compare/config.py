"""The study file: what it may say, read and checked into a ``Comparison`` (format in
``zoo.compare``'s docstring), which ``zoo.compare.plan`` expands into zoo fit configs. Every mistake
is a one-line ``ValueError`` naming it.

Why not jsonargparse, as ``zoo fit`` does: tried (4.53), ``parse_object`` silently drops an
unknown top-level key (``trian:``) and accepts ``train: 5`` until instantiation fails with a
``functools.partial ... must be a mapping`` TypeError; Union fields (``seeds``) fail as "Does not
validate against any of the Union subtypes". Tasks (options depend on ``type``) and model fields
(checked by each family's config) would stay dicts checked here, and ``--set tasks.0.max_len=5``
and YAML 1.2 floats need this module's own code anyway — so jsonargparse would add a layer without
removing one, and lose the one-line errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.analysis.stats import StatisticsError, check_seed_count
from zoo.compare.metrics import (
    KIND_METRICS,
    METRICS,
    TASK_METRICS,
    base_name,
    check_metric_key,
    is_task_metric,
    metric_of,
)
from zoo.compare.tasks import TaskSpec, task_from_config
from zoo.models.registry import get_family

TOP_LEVEL_KEYS = ("name", "description", "output_dir", "seeds", "families", "entries", "model", "variants", "sweep",
                  "tasks", "budget", "train", "baseline", "smallest_effect", "repeat_baseline", "tune", "eval")
MATCHABLE_FIELDS = ("embed_dim", "ffn_dim", "num_layers")


@dataclass
class Budget:
    """What every entry gets the same amount of.

    Args:
        params: Target non-embedding parameters (heads included; a mixture of experts counts only the
            experts each token runs); None = take sizes as configured.
        tolerance: Largest relative miss of ``params`` accepted.
        match: Config fields searched, in order, to hit ``params``: each later field refines the
            earlier (``embed_dim`` is coarse — heads must divide it —, ``ffn_dim`` then fine-tunes).
        tokens: Train every entry on this many tokens (through its stacks, padding not counted): the
            steps are set from the mean training example; None = ``train.max_steps``.
        flops: Or on this many training FLOPs (``zoo.flops``: matmuls of forward and backward).
    """

    params: int | None = None
    tolerance: float = 0.1
    match: list[str] = field(default_factory=lambda: ["embed_dim", "ffn_dim"])
    tokens: int | None = None
    flops: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.match, str):
            self.match = [self.match]
        bad = [f for f in self.match if f not in MATCHABLE_FIELDS]
        if bad or not self.match:
            raise ValueError(f"budget.match={self.match!r}: each field must be one of {list(MATCHABLE_FIELDS)}")
        if not isinstance(self.tolerance, (int, float)) or not 0 < self.tolerance < 1:
            raise ValueError(f"budget.tolerance={self.tolerance} must be in (0, 1)")
        for name in ("params", "tokens", "flops"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"budget.{name}={value!r} must be a positive number or null")
        if self.tokens is not None and self.flops is not None:
            raise ValueError("budget: give tokens or flops, not both")
        self.params = None if self.params is None else int(self.params)
        self.tokens = None if self.tokens is None else int(self.tokens)


@dataclass
class TrainSettings:
    """The training recipe, the same for every entry.

    Args:
        max_steps: Optimizer steps (when the budget names no tokens or FLOPs).
        batch_size: Training batch size.
        eval_batch_size: Validation / test batch size.
        lr: Peak AdamW learning rate.
        weight_decay: Decoupled weight decay of matrix weights.
        betas: AdamW betas.
        warmup_steps: Linear warmup steps, then cosine decay to ``min_lr_ratio`` · lr.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        val_every: Validate (one point of the curves) every this many steps.
        gradient_clip: Gradient norm clipping (0 = none).
        accelerator: Lightning accelerator (``auto`` takes a GPU when there is one).
        precision: Lightning precision, e.g. ``32-true`` or ``bf16-mixed``.
        threads: CPU threads of each run's PyTorch intra-op pool; null = the machine's cores shared
            among ``--jobs``. Small models gain nothing from more, and on a busy machine OpenMP
            threads waiting for each other made steps 40x slower.
    """

    max_steps: int = 500
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    val_every: int = 100
    gradient_clip: float = 1.0
    accelerator: str = "auto"
    precision: str = "32-true"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"train.threads={self.threads!r} must be a positive integer or null")
        for name in ("lr", "weight_decay", "min_lr_ratio", "gradient_clip", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"train.{name}={value!r} must be a number")
        for name in ("max_steps", "batch_size", "eval_batch_size", "val_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name}={value!r} must be a positive integer")
        if not (isinstance(self.betas, list) and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"train.betas={self.betas!r} must be two numbers in [0, 1)")
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train: lr={self.lr} must be > 0, warmup_steps={self.warmup_steps} >= 0, "
                             f"min_lr_ratio={self.min_lr_ratio} in [0, 1]")


@dataclass
class Tune:
    """How an entry with a grid (a list where the study gives a value) picks its value.

    Args:
        seeds: The grid runs on the first this many of the study's seeds (default 1), or on every
            seed (``all``). Each entry takes, per task, the grid value with the best mean validation
            metric over those seeds and trains its other seeds at that value only; the tuning runs
            at the chosen value are its results on those seeds (the same fit config: nothing is
            retrained). One seed is the usual practice (tune once, then reuse) and costs
            ``len(grid) - 1`` extra runs per entry; ``all`` costs ``len(grid)`` times the study and
            makes the choice less noisy. Test metrics are never read for the choice.
        metric: The validation metric that decides (``val_bpb`` or ``bpb``; default: the task's primary
            one — bits per byte, exact match or accuracy).
    """

    seeds: int | str = 1
    metric: str | None = None

    def __post_init__(self) -> None:
        if self.seeds != "all" and (not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1):
            raise ValueError(f"tune.seeds={self.seeds!r} must be a positive number of seeds or 'all'")
        if self.metric is not None:
            check_metric_key(self.metric, "tune.metric")
            if is_task_metric(self.metric):
                raise ValueError(f"tune.metric={self.metric!r}: grids are chosen on validation metrics; an eval "
                                 "task scores the final weights only")
            self.metric = f"val_{base_name(self.metric)}"  # the choice reads validation only

    def count(self, seeds: int) -> int:
        """How many of ``seeds`` seeds the grid runs on."""
        return seeds if self.seeds == "all" else min(int(self.seeds), seeds)


@dataclass
class EvalSettings:
    """lm-evaluation-harness tasks every run of the study's ``lm`` tasks is scored on after its test
    (``zoo.eval``: the final weights, as ``zoo eval`` scores a checkpoint); each task's metrics enter
    the tables as ``<task>/<metric>`` (``zoo.compare.metrics.TASK_METRICS``).

    Args:
        tasks: Task, tag or group names, as ``zoo eval --tasks`` takes them (local: zoo_cloze,
            zoo_next_sentence, zoo_last_word, zoo_paragraphs, zoo_copy, ...; lm-eval's own when
            their data is on disk).
        limit: Items per task at most (a fraction of each task when below 1); null: all of them.
        num_fewshot: Examples before each question (null: each task's default, else 0).
        batch_size: Sequences per forward (masked LM: masked copies).
        metrics: Filled in when the tasks are checked: the ``<task>/<metric>`` keys they report.
    """

    tasks: list[str] = field(default_factory=list)
    limit: float | None = None
    num_fewshot: int | None = None
    batch_size: int = 32
    metrics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        if not isinstance(self.tasks, list) or not self.tasks or not all(isinstance(t, str) for t in self.tasks):
            raise ValueError(f"eval.tasks={self.tasks!r} must be a non-empty list of task names, e.g. [zoo_cloze]")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, (int, float))
                                       or self.limit <= 0):
            raise ValueError(f"eval.limit={self.limit!r} must be > 0 (items, or a fraction below 1) or null")
        if self.limit is not None and self.limit >= 1:
            self.limit = int(self.limit)
        if self.num_fewshot is not None and (isinstance(self.num_fewshot, bool) or not isinstance(self.num_fewshot, int)
                                             or self.num_fewshot < 0):
            raise ValueError(f"eval.num_fewshot={self.num_fewshot!r} must be an integer >= 0 or null")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"eval.batch_size={self.batch_size!r} must be a positive integer")

    def request(self) -> dict[str, Any]:
        """What a run is scored with (``zoo.compare.job``): a changed request scores the runs again."""
        return {"tasks": self.tasks, "limit": self.limit, "num_fewshot": self.num_fewshot,
                "batch_size": self.batch_size}


def _eval_settings(values: Any, tasks: list[TaskSpec], entries: list[Entry]) -> EvalSettings | None:
    """``eval:`` checked against lm-eval before anything trains: installed, every task known (close
    matches otherwise), each answerable by every family scored; the metric keys it will report."""
    if values is None:
        return None
    if isinstance(values, list):  # eval: [zoo_cloze] is eval: {tasks: [zoo_cloze]}
        values = {"tasks": values}
    if isinstance(values, dict) and "metrics" in values:
        raise ValueError("eval.metrics is filled in from the tasks (each reports its own); drop it")
    settings = _settings(EvalSettings, values, "eval")
    lm_tasks = [t.name for t in tasks if t.kind == "lm"]
    if not lm_tasks:
        raise ValueError(f"eval: lm-eval tasks score language models, and the study trains none (its tasks are "
                         f"{[f'{t.name} ({t.kind})' for t in tasks]}); add an lm task or drop eval")
    from zoo.eval.run import check_tasks, offline_by_default, prepare

    offline_by_default()
    try:
        _, loaded = prepare(settings.tasks)
        for entry in entries:
            if entry.tasks is None or set(entry.tasks) & set(lm_tasks):
                check_tasks(loaded, get_family(entry.family).shape, entry.family, settings.num_fewshot)
    except ValueError as error:
        said = str(error).removeprefix("zoo eval: ").replace("--num_fewshot", "num_fewshot")
        raise ValueError(f"eval: {said}") from None
    settings.metrics = [f"{name}/{metric}" for name, task in loaded.items() for metric in task.higher_is_better()
                        if metric in TASK_METRICS]
    if not settings.metrics:
        raise ValueError(f"eval: the tasks {list(loaded)} report none of the metrics a study compares "
                         f"({list(TASK_METRICS)})")
    return settings


@dataclass
class Entry:
    """One contestant: a family and config overrides (a variant's included), maybe only some tasks.

    Attributes:
        train: Training settings of this entry over the study's (e.g. its own ``lr``).
        grid: ``train.<key>`` or ``model.<field>`` -> the values this entry is tuned over (see ``Tune``).
        group: The base entry this one was crossed from, when variants cross several (each group is
            one table, against its own baseline); empty otherwise.
        baseline: The entry this one is compared with (None: no baseline in the study).
        repeat: For a repeat of the baseline (``repeat_baseline``): its number (1, 2, ...), which moves
            its initialisation seed; 0 for every other entry.
    """

    name: str
    family: str
    config: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    group: str = ""
    baseline: str | None = None
    repeat: int = 0


@dataclass
class Comparison:
    """A parsed comparison file (see the module docstring).

    Attributes:
        baseline: The study's ``baseline`` as written (an entry, or a variant of each group).
        smallest_effect: Metric name (``bpb``, or ``val_bpb`` / ``test_bpb``) -> the smallest difference
            that matters, the study's over ``zoo.compare.metrics``' defaults.
        repeat_baseline: Repeats of each baseline (noise floor; ``zoo.compare.plan.init_seed``).
        tune: How grids are tuned.
        eval: lm-eval tasks the final weights of the ``lm`` runs are scored on (None: none).
    """

    name: str
    output_dir: Path
    seeds: list[int]
    entries: list[Entry]
    tasks: list[TaskSpec]
    model: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    train: TrainSettings = field(default_factory=TrainSettings)
    description: str = ""
    baseline: str | None = None
    smallest_effect: dict[str, float] = field(default_factory=dict)
    repeat_baseline: int = 0
    tune: Tune = field(default_factory=Tune)
    eval: EvalSettings | None = None


def smallest_effect(given: dict[str, float], key: str) -> float | None:
    """``given[key]``, else ``given[<metric of key>]``, else the metric's default (None: no verdicts)."""
    if key in given:
        return given[key]
    return given.get(base_name(key), metric_of(key).smallest_effect)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: ``1e-3`` is a number (PyYAML's YAML 1.1 reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def _settings(cls: type, values: Any, what: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a mapping, got {values!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown key {unknown[0]!r}; valid keys are {known}")
    try:
        return cls(**values)
    except TypeError as error:  # e.g. a string where a number belongs
        raise ValueError(f"{what}: {error}") from None


def _config_overrides(values: Any, what: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a mapping of config fields, got {values!r}")
    return dict(values)


def _is_grid(value: Any, list_typed: bool) -> bool:
    """A list where one value belongs is a grid; a field whose value is itself a list (``betas``) takes a
    list of lists."""
    return isinstance(value, list) and (not list_typed or (bool(value) and all(isinstance(v, list) for v in value)))


def _nearest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _train_grid(values: Any, what: str = "train",
                study: dict[str, Any] | None = None) -> tuple[Any, dict[str, list[Any]]]:
    """``train:`` (the study's, or an entry's over the study's scalars ``study``) without its grids, and
    the grids as ``train.<key>`` -> values (each value checked)."""
    if not isinstance(values, dict):
        return values, {}
    study = study or {}
    known = {f.name: f for f in dataclasses.fields(TrainSettings)}
    scalars, grid = {}, {}
    for key, value in values.items():
        if not _is_grid(value, "list" in str(known[key].type) if key in known else False):
            scalars[key] = value
            continue
        if key not in known:
            raise ValueError(f"{what}.{key}: a grid over a key that does not exist{_nearest(key, list(known))}; "
                             f"valid keys are {list(known)}")
        if not value:
            raise ValueError(f"{what}.{key}: a grid needs at least one value, got []")
        grid[f"train.{key}"] = list(value)
    _settings(TrainSettings, {**study, **scalars}, what)
    for key, options in grid.items():
        for value in options:  # each value through TrainSettings' own checks
            _settings(TrainSettings, {**study, **scalars, key.split(".", 1)[1]: value}, what)
    return scalars, grid


def _config_grid(values: dict[str, Any], family: str, what: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Config overrides without their grids, and the grids as ``model.<field>`` -> values."""
    fields = {f.name: f for f in dataclasses.fields(get_family(family).config_class)}
    scalars, grid = {}, {}
    for key, value in values.items():
        if not _is_grid(value, "list" in str(fields[key].type) if key in fields else False):
            scalars[key] = value
            continue
        if key not in fields:
            raise ValueError(f"{what}: a grid over {key!r}, which is not a config field of {family}"
                             f"{_nearest(key, list(fields))}; zoo fit --help lists the fields")
        if not value:
            raise ValueError(f"{what}: the grid over {key!r} needs at least one value, got []")
        grid[f"model.{key}"] = list(value)
    return scalars, grid


def _entries(raw: dict[str, Any]) -> list[Entry]:
    base: list[Entry] = []
    for family in raw.get("families") or []:
        base.append(Entry(name=str(family), family=str(family)))
    for item in raw.get("entries") or []:
        if not isinstance(item, dict) or "family" not in item:
            raise ValueError(f"each of entries needs a family (and optionally name, config, tasks), got {item!r}")
        unknown = sorted(set(item) - {"name", "family", "config", "tasks", "train"})
        if unknown:
            raise ValueError(f"entry {item.get('name', item['family'])!r}: unknown key {unknown[0]!r}; "
                             f"valid keys are ['name', 'family', 'config', 'tasks', 'train']")
        name = str(item.get("name", item["family"]))
        tasks = item.get("tasks")
        if tasks is not None and (not isinstance(tasks, list) or not tasks):
            raise ValueError(f"entry {name!r}: tasks must be a non-empty list of task names")
        base.append(Entry(name, str(item["family"]), _config_overrides(item.get("config"), f"entry {name!r} config"),
                          tasks, train=_config_overrides(item.get("train"), f"entry {name!r} train")))
    if not base:
        raise ValueError("the comparison names no entries: give families: [...] or entries: [...]")
    for entry in base:
        try:
            get_family(entry.family)
        except ValueError as error:
            raise ValueError(f"entry {entry.name!r}: {error}") from None

    variants: list[tuple[str, dict[str, Any], list[str] | None, dict[str, Any]]] = []
    base_names = [e.name for e in base]
    for item in raw.get("variants") or []:
        if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "config", "only", "train"}:
            raise ValueError(f"each variant needs a name and a config mapping (and optionally train: {{...}} and "
                             f"only: [entries]), got {item!r}")
        only = item.get("only")
        if only is not None and (not isinstance(only, list) or not only or set(map(str, only)) - set(base_names)):
            raise ValueError(f"variant {item['name']!r}: only must list some of the entries {base_names}, got {only!r}")
        variants.append((str(item["name"]), _config_overrides(item.get("config"), f"variant {item['name']!r} config"),
                         None if only is None else [str(o) for o in only],
                         _config_overrides(item.get("train"), f"variant {item['name']!r} train")))
    sweep = raw.get("sweep")
    if sweep is not None:
        if not isinstance(sweep, dict) or len(sweep) != 1 or not isinstance(next(iter(sweep.values())), list):
            raise ValueError(f"sweep must map one config field to a list of values, e.g. "
                             f"{{position: [learned, rotary]}}, got {sweep!r}")
        (name, values), = sweep.items()
        variants += [(f"{name}={'null' if v is None else v}", {name: v}, None, {}) for v in values]
    if variants:
        several = len(base) > 1
        base = [
            Entry(f"{e.name}/{v_name}" if several else v_name, e.family, {**e.config, **v_config}, e.tasks,
                  train={**e.train, **v_train}, group=e.name if several else "")
            for e in base for v_name, v_config, only, v_train in variants if only is None or e.name in only
        ]
    names = [e.name for e in base]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"entry name {duplicates[0]!r} appears more than once; give entries distinct names")
    return base


def _set(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML; list items by index) to the raw file."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.max_steps=100")
    path, value = assignment.split("=", 1)
    keys = path.strip().split(".")
    node: Any = raw
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ValueError(f"--set {path}: {key!r} is not an index of a list of {len(node)}")
            key = int(key)
            if isinstance(node[key], str) and not last:  # a task given by name: make it a mapping
                node[key] = {"type": node[key]}
        elif not isinstance(node, dict):
            raise ValueError(f"--set {path}: {'.'.join(keys[:i])} is not a mapping")
        if last:
            node[key] = _yaml(value)
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def load_comparison(
    path: str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    scale: float = 1.0,
    output_dir: str | None = None,
    seeds: Sequence[int] | None = None,
) -> Comparison:
    """Read, override and check a comparison file.

    Args:
        path: The YAML file.
        overrides: ``KEY=VALUE`` assignments (``train.max_steps=100``, ``model.embed_dim=128``).
        scale: Multiplies the training length (``max_steps`` or the token / FLOP budget) and the
            parameter target, so ``scale=2`` trains twice as big a model twice as long.
        output_dir: Where results go (default: the file's ``output_dir``, else ``runs/compare/<name>``).
        seeds: Replace the file's seeds.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Anything wrong in the file; one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"comparison file {os.fspath(path)!r} does not exist")
    try:
        raw = _yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{os.fspath(path)} is not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{os.fspath(path)} must hold a mapping (name, families, tasks, ...)")
    for assignment in overrides:
        _set(raw, assignment)
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"{os.fspath(path)}: unknown key {unknown[0]!r}; valid keys are {list(TOP_LEVEL_KEYS)}")
    if scale <= 0:
        raise ValueError(f"--scale must be positive, got {scale}")

    name = str(raw.get("name") or path.stem)
    raw_seeds = list(seeds) if seeds is not None else raw.get("seeds", [0])
    if isinstance(raw_seeds, int) and not isinstance(raw_seeds, bool):
        raw_seeds = list(range(raw_seeds))
    if not isinstance(raw_seeds, list) or not raw_seeds or not all(isinstance(s, int) for s in raw_seeds):
        raise ValueError(f"seeds must be a non-empty list of integers or a count, got {raw_seeds!r}")
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise ValueError("the comparison needs tasks: a non-empty list of task names or mappings")
    tasks = [task_from_config(item) for item in tasks_raw]
    task_names = [t.name for t in tasks]
    if len(set(task_names)) != len(task_names):
        raise ValueError(f"two tasks share a name in {task_names}; give one a different name")
    entries = _entries(raw)
    for entry in entries:
        for task in entry.tasks or []:
            if task not in task_names:
                raise ValueError(f"entry {entry.name!r} lists task {task!r}, which is not among the tasks {task_names}")

    budget = _settings(Budget, raw.get("budget"), "budget")
    train_values, train_grid = _train_grid(raw.get("train"))
    train = _settings(TrainSettings, train_values, "train")
    model = _config_overrides(raw.get("model"), "model")
    for entry in entries:
        _, model_grid = _config_grid(model, entry.family, "model")
        entry.config, own = _config_grid(entry.config, entry.family, f"entry {entry.name!r} config")
        entry.train, own_train = _train_grid(entry.train, f"entry {entry.name!r} train", train_values or {})
        shared = {k: v for k, v in {**train_grid, **model_grid}.items()
                  if k.split(".", 1)[1] not in (entry.config if k.startswith("model.") else entry.train)}
        entry.grid = {**shared, **own_train, **own}
    model = {k: v for k, v in model.items() if not _is_grid(v, False)}
    if scale != 1.0:
        train.max_steps = max(1, math.ceil(train.max_steps * scale))
        for entry in entries:
            if "train.max_steps" in entry.grid:
                entry.grid["train.max_steps"] = [max(1, math.ceil(v * scale)) for v in entry.grid["train.max_steps"]]
        budget.params = round(budget.params * scale) if budget.params else None
        budget.tokens = round(budget.tokens * scale) if budget.tokens else None
        budget.flops = budget.flops * scale if budget.flops else None
    seeds = [int(s) for s in raw_seeds]
    baseline = raw.get("baseline")
    entries = _baselines(entries, baseline, seeds, raw.get("repeat_baseline"))
    tune = _settings(Tune, raw.get("tune"), "tune")
    if raw.get("tune") is not None and not any(e.grid for e in entries):
        raise ValueError("tune: no value of the study is a grid (a list, e.g. train: {lr: [1.0e-3, 2.0e-3]})")
    if tune.metric is not None:
        for task in tasks:
            if base_name(tune.metric) not in KIND_METRICS[task.kind]:
                raise ValueError(f"tune.metric={tune.metric!r}: task {task.name!r} ({task.kind}) reports "
                                 f"{list(KIND_METRICS[task.kind])}")
    evaluation = _eval_settings(raw.get("eval"), tasks, entries)
    effects = _smallest_effects(raw.get("smallest_effect"))
    scored = evaluation.metrics if evaluation else []
    for key in effects:
        if is_task_metric(key) and key not in scored:
            raise ValueError(f"smallest_effect: {key!r} is not a score of the study's eval tasks "
                             f"({scored if scored else 'it names none: add eval: {tasks: [...]}'})")
    out = Path(output_dir or raw.get("output_dir") or Path("runs") / "compare" / name)
    return Comparison(name=name, output_dir=out, seeds=seeds, entries=entries, tasks=tasks, model=model,
                      budget=budget, train=train, description=str(raw.get("description") or ""),
                      baseline=None if baseline is None else str(baseline),
                      smallest_effect=effects,
                      repeat_baseline=int(raw.get("repeat_baseline") or 0), tune=tune, eval=evaluation)


def _smallest_effects(values: Any) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"smallest_effect must map metrics to numbers, e.g. {{bpb: 0.005, accuracy: 0.005}}, "
                         f"got {values!r}")
    out = {}
    for key, value in values.items():
        check_metric_key(key, "smallest_effect")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"smallest_effect.{key}={value!r} must be a number >= 0")
        out[key] = float(value)
    return out


def _baselines(entries: list[Entry], baseline: Any, seeds: list[int], repeats: Any) -> list[Entry]:
    """Give each entry its baseline and add the baselines' repeats; refuse what cannot be compared."""
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0):
        raise ValueError(f"repeat_baseline={repeats!r} must be a number of repeats (0, 1, 2, ...)")
    if baseline is None:
        if repeats:
            raise ValueError("repeat_baseline repeats the baseline: name one (baseline: <entry>)")
        return entries
    names = [e.name for e in entries]
    groups = list(dict.fromkeys(e.group for e in entries))
    if not isinstance(baseline, str):
        raise ValueError(f"baseline must name an entry, got {baseline!r}")
    if baseline in names:
        chosen = {e.name: baseline for e in entries}
    elif groups != [""] and any(f"{g}/{baseline}" in names for g in groups):
        lacking = [g for g in groups if f"{g}/{baseline}" not in names]
        if lacking:
            raise ValueError(f"baseline {baseline!r}: entry {lacking[0]!r} has no variant {baseline!r} to be compared "
                             f"with; cross the variant with every entry, or name an entry")
        chosen = {e.name: f"{e.group}/{baseline}" for e in entries}
    else:
        raise ValueError(f"baseline {baseline!r} is not an entry{_nearest(baseline, names)}; entries are {names}")
    try:
        check_seed_count(len(seeds), verdict=True)
    except StatisticsError as error:
        raise ValueError(f"baseline {baseline!r} asks for paired verdicts, but {error}; give more seeds (seeds: "
                         f"[0, 1, 2] or --seeds 0 1 2) or drop the baseline (--set baseline=null)") from None
    for entry in entries:
        entry.baseline = chosen[entry.name]
    added = []
    for name in dict.fromkeys(chosen.values()):
        source = entries[names.index(name)]
        for r in range(1, (repeats or 0) + 1):
            repeat = dataclasses.replace(source, name=f"{name}-repeat{r}", grid={}, baseline=name, repeat=r)
            if repeat.name in names:
                raise ValueError(f"repeat_baseline names its repeats {repeat.name!r}, which is an entry already; "
                                 f"rename that entry")
            added.append(repeat)
    return entries + added


def study_settings(comparison: Comparison) -> dict[str, Any]:
    """The study as plain values — what ``results.json`` records beside the runs, and all that the
    statistics and the report read (so ``zoo compare report`` needs nothing but that file)."""
    from zoo.compare.plan import grid_points, point_label  # plan imports this module

    tuned = comparison.tune.count(len(comparison.seeds))
    entries = []
    for entry in comparison.entries:
        points = grid_points(entry) if entry.grid else []
        entries.append({**dataclasses.asdict(entry),
                        "points": [{"label": point_label(p), "values": p} for p in points]})
    scored = comparison.eval.metrics if comparison.eval else []
    effects = {key: smallest_effect(comparison.smallest_effect, key)
               for key in [*(f"{split}_{m}" for split in ("val", "test") for m in METRICS), *scored]}
    return {
        "name": comparison.name, "description": comparison.description, "seeds": comparison.seeds,
        "baseline": comparison.baseline, "repeat_baseline": comparison.repeat_baseline,
        "smallest_effect": effects, "tune": {"seeds": comparison.seeds[:tuned], "metric": comparison.tune.metric},
        "budget": dataclasses.asdict(comparison.budget), "train": dataclasses.asdict(comparison.train),
        "model": comparison.model, "entries": entries,
        "tasks": [{**t.options(), "kind": t.kind, "test_note": t.test_note} for t in comparison.tasks],
        "eval": dataclasses.asdict(comparison.eval) if comparison.eval else None,
    }
