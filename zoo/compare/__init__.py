"""Compare architectures on tasks: one YAML file → a fair table and plots.

A comparison trains every entry (a family, or a family with ablation overrides) on every task, for
each seed: the same examples, tokenizer and training recipe for all, and a matched budget — the
same non-embedding parameter count (sizes searched automatically) and/or the same training tokens
or FLOPs. Results are appended to ``results.jsonl`` after each run, so an interrupted comparison
resumes where it stopped; ``results.csv``, ``results.json``, ``results.md`` (mean ± std over seeds)
and ``plots/<task>.png`` are written at the end.

Everything only ``zoo compare`` uses lives here, one concern per module:

- ``config``: the comparison file → ``Comparison`` (entries, tasks, budget, training recipe).
- ``tasks``: the task specs (``TASK_TYPES``, ``task_from_config``); ``synthetic``: their generated data.
- ``data``: ``TaskData``, the shared split / tokenizer / JSON Lines helpers, batches, ``SuiteDataModule``.
- ``adapters``: how each family shape (``zoo.models.registry``) runs each kind of task.
- ``modules``: the LightningModules (loss, metrics, optimizer, FLOP count); ``metrics``: exact match, bits per byte.
- ``budget``: parameter counts and matching, steps per token / FLOP budget.
- ``runner``: plan, train, resume; ``report``: tables and plots.

The file format (every key but ``tasks`` and one of ``families`` / ``entries`` is optional)::

    name: seq2seq_families
    output_dir: runs/compare/seq2seq_families   # default runs/compare/<name>
    seeds: [0, 1]                               # or a count: 2
    families: [t5, gpt, bert]                   # shorthand for entries named by family
    entries:                                    # ... or explicit ones
      - {name: t5-deep, family: t5, config: {num_layers: 3}, tasks: [copy]}
    model: {num_layers: 2, num_heads: 4, dropout: 0.0}   # config fields shared by every entry
    variants:                                   # ablations: each entry × each variant
      - {name: rmsnorm, config: {norm: rmsnorm}}
    sweep: {position: [learned, rotary, alibi]} # shorthand: one variant per value
    tasks: [copy, {type: addition, max_len: 3}] # see zoo.compare.tasks.TASK_TYPES
    budget: {params: 100000, tolerance: 0.1, match: [embed_dim, ffn_dim], tokens: null, flops: null}
    train: {max_steps: 600, batch_size: 32, lr: 1.0e-3, val_every: 150}

Bad input (unknown key, family, task, option or config field; a task a family cannot run; a
budget no size reaches; a JSONL file missing its fields) fails with one line before anything
trains.
"""

from zoo.compare.budget import match_parameters, steps_for_budget
from zoo.compare.config import Budget, Comparison, Entry, TrainSettings, load_comparison
from zoo.compare.report import markdown_table, plot_curves, write_reports
from zoo.compare.runner import Run, plan, read_results, run_comparison, train_run

__all__ = [
    "Budget",
    "Comparison",
    "Entry",
    "Run",
    "TrainSettings",
    "load_comparison",
    "markdown_table",
    "match_parameters",
    "plan",
    "plot_curves",
    "read_results",
    "run_comparison",
    "steps_for_budget",
    "train_run",
    "write_reports",
]
