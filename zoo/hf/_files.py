"""Reading a ``save_pretrained`` directory: ``config.json`` and the weights, safetensors or ``.bin``,
sharded or not. Every failure is a one-line ``ValueError`` naming the file (a missing directory is a
``FileNotFoundError``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def read_config_json(directory: Path) -> Any:
    """The parsed ``config.json`` of ``directory``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{directory} has no config.json (not a Hugging Face model directory)")
    try:
        return json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error


def load_hf_config(directory: Path, config_class: str) -> Any:
    """The transformers config ``config_class`` read from ``directory``, validated by transformers."""
    import transformers

    try:
        return getattr(transformers, config_class).from_pretrained(str(directory))
    except Exception as error:  # transformers' own validation errors run over several lines
        message = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{directory / 'config.json'}: {message}") from error


def load_weights(directory: Path) -> dict[str, Tensor]:
    """All tensors of ``directory``; unreadable files are refused in one line."""
    try:
        return _read_weights(directory)
    except ValueError:
        raise
    except Exception as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory}: cannot read the weights ({type(error).__name__}: {detail})") from error


def _read_weights(directory: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    def load(file: Path) -> dict[str, Tensor]:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        return torch.load(file, map_location="cpu", weights_only=True)

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (directory / single).is_file():
            return load(directory / single)
        if (directory / index).is_file():
            shards = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
            state: dict[str, Tensor] = {}
            for shard in shards:
                state.update(load(directory / shard))
            return state
    raise ValueError(f"{directory} holds no weights (model.safetensors or pytorch_model.bin)")
