"""The metrics a study reports, by name: which direction is better, the smallest difference that
matters by default, the unit. A study's ``smallest_effect: {bpb: 0.01}`` replaces a default (for the
validation and test values alike; ``test_bpb: 0.01`` names one of them).

The defaults are the issue's ("0.005 bits per byte or half a point of accuracy"): 0.005 bits per byte
is a quarter of a per cent of a ~2 bits/byte model, and half a point of exact match, accuracy,
macro-F1 or character error rate is about one answer in two hundred. They are a floor for "matters",
not a claim that such a difference is worth having: a study that cares about less (or only about more)
says so. Perplexity has no default (it is ``exp`` of the loss per token, whose scale depends on the
tokenizer): it gets intervals and verdicts only where a study names its smallest effect.

A study's ``eval:`` tasks (lm-evaluation-harness, ``zoo.eval``) add one metric per task and lm-eval
metric, keyed ``<task>/<metric>`` (``zoo_cloze/acc``): ``TASK_METRICS`` gives the direction and the
default smallest effect of lm-eval's metric names (accuracy-like: half a point, as above; bits per
byte: 0.005; perplexities: none, as above). lm-eval's own ``higher_is_better`` for these names agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("val", "test")


@dataclass(frozen=True)
class Metric:
    """One metric of the results tables.

    Attributes:
        title: How tables and axes name it.
        higher_is_better: Its direction.
        unit: Its unit, for axis labels.
        smallest_effect: The default smallest difference that matters; None: no verdicts by default.
    """

    title: str
    higher_is_better: bool
    unit: str
    smallest_effect: float | None


METRICS: dict[str, Metric] = {
    "bpb": Metric("bits per byte", False, "bits/byte", 0.005),
    "perplexity": Metric("perplexity", False, "per token", None),
    "exact_match": Metric("exact match", True, "fraction of answers", 0.005),
    "cer": Metric("character error rate", False, "errors per character", 0.005),
    "accuracy": Metric("accuracy", True, "fraction of examples", 0.005),
    "macro_f1": Metric("macro-F1", True, "mean F1 over classes", 0.005),
}
#: lm-eval's metric names a study's ``eval:`` tasks are reported by (others stay in the run's lm-eval file).
TASK_METRICS: dict[str, Metric] = {
    "acc": Metric("accuracy", True, "fraction of items", 0.005),
    "acc_norm": Metric("length-normalised accuracy", True, "fraction of items", 0.005),
    "exact_match": Metric("exact match", True, "fraction of items", 0.005),
    "f1": Metric("F1", True, "F1", 0.005),
    "bits_per_byte": Metric("bits per byte", False, "bits/byte", 0.005),
    "perplexity": Metric("perplexity", False, "per token", None),
    "word_perplexity": Metric("word perplexity", False, "per word", None),
    "byte_perplexity": Metric("byte perplexity", False, "per byte", None),
}
#: Per kind of task: the validation metric that picks a grid value and is plotted against tokens.
PRIMARY = {"seq2seq": "exact_match", "classification": "accuracy", "lm": "bpb"}
#: Per kind of task: the metrics its runs report (each as ``val_<name>`` and ``test_<name>``).
KIND_METRICS = {"seq2seq": ("exact_match", "cer"), "classification": ("accuracy", "macro_f1"),
                "lm": ("bpb", "perplexity")}
#: Per kind of task: the columns of its tables, in order.
COLUMNS = {"seq2seq": ("val_exact_match", "val_cer", "test_exact_match", "test_cer"),
           "classification": ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1"),
           "lm": ("val_bpb", "val_perplexity", "test_bpb")}


def column_title(key: str) -> str:
    """``test_bpb`` -> ``test bits per byte``."""
    split, _, _ = key.partition("_")
    return f"{split} {metric_of(key).title}" if split in SPLITS else metric_of(key).title


def metric_of(key: str) -> Metric:
    """The ``Metric`` of ``key``: a name (``bpb``), a split's (``val_bpb``, ``test_bpb``) or an eval
    task's (``zoo_cloze/acc``)."""
    if "/" in key:
        task, _, name = key.rpartition("/")
        metric = TASK_METRICS[name]
        return Metric(f"{task} {metric.title}", metric.higher_is_better, metric.unit, metric.smallest_effect)
    return METRICS[base_name(key)]


def is_task_metric(key: str) -> bool:
    """Whether ``key`` names an eval task's metric (``zoo_cloze/acc``)."""
    task, _, name = key.rpartition("/")
    return bool(task) and name in TASK_METRICS


def base_name(key: str) -> str:
    """``val_bpb`` -> ``bpb``; a bare name stays."""
    split, _, rest = key.partition("_")
    return rest if split in SPLITS and rest in METRICS else key


def valid_keys() -> list[str]:
    """Every name a study may give a smallest effect or a tuning metric by."""
    return [*METRICS, *(f"{s}_{m}" for s in SPLITS for m in METRICS)]


def check_metric_key(key: str, what: str) -> str:
    """``key`` if it names a metric (``bpb``, ``val_bpb``, ...); else one line naming the valid ones."""
    if not isinstance(key, str) or (key not in valid_keys() and not is_task_metric(key)):
        raise ValueError(f"{what}: {key!r} is not a metric; use one of {list(METRICS)}, or with a split as "
                         f"val_<metric> / test_<metric>, or an eval task's as <task>/<metric> with a metric of "
                         f"{list(TASK_METRICS)}")
    return key


def si(value: float) -> str:
    """``1.31e12`` -> ``1.31T``: three significant digits and an SI prefix."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"
