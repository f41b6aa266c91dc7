"""Small studies for the comparison tests: tasks built in milliseconds, models trained in seconds."""

from __future__ import annotations

from pathlib import Path

import yaml

#: A reverse task small enough to train for a few steps in about a second.
TINY_REVERSE = {"type": "reverse", "train_size": 64, "val_size": 8, "test_size": 8, "max_len": 4}


def write_study(path: Path, **changes) -> str:
    """A two-entry study of ``TINY_REVERSE`` (``changes`` replace its keys; None drops one)."""
    study = {
        "name": "tiny",
        "seeds": [0],
        "families": ["t5", "gpt"],
        "model": {"embed_dim": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        "tasks": [TINY_REVERSE],
        "train": {"max_steps": 4, "batch_size": 8, "val_every": 2, "warmup_steps": 1},
        **changes,
    }
    path.write_text(yaml.safe_dump({k: v for k, v in study.items() if v is not None}))
    return str(path)
