"""State dicts in and out: an ``Architecture``'s weight table applied to a Hugging Face state dict
(import, with every tensor accounted for) or to a zoo one (export)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from zoo.hf._common import Architecture
from zoo.models.config import TransformerConfig


def normalise_names(arch: Architecture, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Names as the head class has them: old spellings renamed (``arch.renames``), and the base-model
    prefix added when no name has it (files of the bare base model, such as the original GPT-2's)."""
    out = {}
    prefixed = not arch.prefix or any(k.startswith(arch.prefix) for k in state)
    head_root = arch.head.split(".")[0] + "."  # head tensors live outside the base model: cls., lm_head.
    for key, tensor in state.items():
        for pattern, replacement in arch.renames:
            key = re.sub(pattern, replacement, key)
        if not prefixed and not key.startswith(head_root):
            key = arch.prefix + key
        out[key] = tensor
    return out


def import_state(arch: Architecture, config: TransformerConfig, state: Mapping[str, Tensor],
                 model: nn.Module, source: str) -> dict[str, Tensor]:
    """The zoo state dict made of HF ``state``; every HF tensor must be used, ignorable or a tied copy.

    Raises:
        ValueError: (one line, starting with ``source``) a missing, mis-shaped or unexpected tensor.
    """
    expected = model.state_dict()
    out, used = {}, set()
    for w in arch.weights(config, state):
        parts = []
        rows = w.rows or ((expected[w.zoo].shape[0],) if w.zoo else (w.shape[0],))
        trailing = tuple(expected[w.zoo].shape[1:]) if w.zoo else tuple(w.shape[1:])
        for key, n in zip(w.hf, rows, strict=True):
            if key not in state:
                raise ValueError(f"{source}: missing tensor {key}")
            tensor, shape = state[key], (n, *trailing)
            if w.conv1d:
                shape = shape[::-1]
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{source}: tensor {key} has shape {tuple(tensor.shape)}; the config needs {shape}")
            parts.append(tensor.t() if w.conv1d and tensor.ndim == 2 else tensor)
            used.add(key)
        used.update(w.copies)
        if w.zoo is None:
            if parts[0].any():
                raise ValueError(f"{source}: tensor {w.hf[0]} must be all zeros: the zoo model has no place for it")
            continue
        out[w.zoo] = torch.cat(parts) if len(parts) > 1 else parts[0]
    for alias, original in arch.aliases:
        if alias in state and alias not in used:
            if original in state and state[alias].shape == state[original].shape \
                    and torch.equal(state[alias], state[original]):
                used.add(alias)
            else:
                raise ValueError(f"{source}: tensor {alias} differs from {original}; the zoo model shares one")
    for key in state:
        if key not in used and not any(re.search(p, key) for p in arch.ignored):
            raise ValueError(f"{source}: unexpected tensor {key} (not part of a {arch.hf_class} of this config)")
    fill_tied(model, out)
    return out


def export_state(arch: Architecture, config: TransformerConfig, zoo_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The HF state dict of a zoo one (tied copies not filled in: see ``fill_tied``)."""
    state: dict[str, Tensor] = {}
    for w in arch.weights(config, None):
        if w.zoo is None:
            state[w.hf[0]] = torch.zeros(w.shape)
            continue
        tensor = zoo_state[w.zoo]
        parts = tensor.split(list(w.rows)) if w.rows else (tensor,)
        for key, part in zip(w.hf, parts, strict=True):
            state[key] = part.t() if w.conv1d and part.ndim == 2 else part
        for key in w.copies:
            state[key] = tensor
    return state


def fill_tied(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Give every name of a shared (tied) parameter the tensor one of its names received."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    for names in groups.values():
        present = [n for n in names if n in state]
        for name in names:
            if present:
                state.setdefault(name, state[present[0]])
