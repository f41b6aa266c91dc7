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
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.compare.tasks import TaskSpec, task_from_config
from zoo.models.registry import get_family

TOP_LEVEL_KEYS = ("name", "description", "output_dir", "seeds", "families", "entries", "model", "variants", "sweep",
                  "tasks", "budget", "train")
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
class Entry:
    """One contestant: a family and config overrides (a variant's included), maybe only some tasks."""

    name: str
    family: str
    config: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] | None = None


@dataclass
class Comparison:
    """A parsed comparison file (see the module docstring)."""

    name: str
    output_dir: Path
    seeds: list[int]
    entries: list[Entry]
    tasks: list[TaskSpec]
    model: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    train: TrainSettings = field(default_factory=TrainSettings)
    description: str = ""


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


def _entries(raw: dict[str, Any]) -> list[Entry]:
    base: list[Entry] = []
    for family in raw.get("families") or []:
        base.append(Entry(name=str(family), family=str(family)))
    for item in raw.get("entries") or []:
        if not isinstance(item, dict) or "family" not in item:
            raise ValueError(f"each of entries needs a family (and optionally name, config, tasks), got {item!r}")
        unknown = sorted(set(item) - {"name", "family", "config", "tasks"})
        if unknown:
            raise ValueError(f"entry {item.get('name', item['family'])!r}: unknown key {unknown[0]!r}; "
                             f"valid keys are ['name', 'family', 'config', 'tasks']")
        name = str(item.get("name", item["family"]))
        tasks = item.get("tasks")
        if tasks is not None and (not isinstance(tasks, list) or not tasks):
            raise ValueError(f"entry {name!r}: tasks must be a non-empty list of task names")
        base.append(Entry(name, str(item["family"]), _config_overrides(item.get("config"), f"entry {name!r} config"),
                          tasks))
    if not base:
        raise ValueError("the comparison names no entries: give families: [...] or entries: [...]")
    for entry in base:
        try:
            get_family(entry.family)
        except ValueError as error:
            raise ValueError(f"entry {entry.name!r}: {error}") from None

    variants: list[tuple[str, dict[str, Any]]] = []
    for item in raw.get("variants") or []:
        if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "config"}:
            raise ValueError(f"each variant needs a name and a config mapping (nothing else), got {item!r}")
        variants.append((str(item["name"]), _config_overrides(item.get("config"), f"variant {item['name']!r} config")))
    sweep = raw.get("sweep")
    if sweep is not None:
        if not isinstance(sweep, dict) or len(sweep) != 1 or not isinstance(next(iter(sweep.values())), list):
            raise ValueError(f"sweep must map one config field to a list of values, e.g. "
                             f"{{position: [learned, rotary]}}, got {sweep!r}")
        (name, values), = sweep.items()
        variants += [(f"{name}={'null' if v is None else v}", {name: v}) for v in values]
    if variants:
        base = [
            Entry(v_name if len(base) == 1 else f"{e.name}/{v_name}", e.family, {**e.config, **v_config}, e.tasks)
            for e in base for v_name, v_config in variants
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
    train = _settings(TrainSettings, raw.get("train"), "train")
    if scale != 1.0:
        train.max_steps = max(1, math.ceil(train.max_steps * scale))
        budget.params = round(budget.params * scale) if budget.params else None
        budget.tokens = round(budget.tokens * scale) if budget.tokens else None
        budget.flops = budget.flops * scale if budget.flops else None
    out = Path(output_dir or raw.get("output_dir") or Path("runs") / "compare" / name)
    return Comparison(name=name, output_dir=out, seeds=[int(s) for s in raw_seeds], entries=entries, tasks=tasks,
                      model=_config_overrides(raw.get("model"), "model"), budget=budget, train=train,
                      description=str(raw.get("description") or ""))
