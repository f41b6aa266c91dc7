"""Small task options for the comparison tests, built in milliseconds."""

from __future__ import annotations

#: A reverse task small enough to train for a few steps in about a second.
TINY_REVERSE = {"type": "reverse", "train_size": 64, "val_size": 8, "test_size": 8, "max_len": 4}
