"""``zoo.load(path)``: a model and its tokenizer, from a zoo checkpoint or an export directory.

    model, tokenizer = zoo.load("runs/gpt_clm")         # a run: its newest checkpoint
    model, tokenizer = zoo.load("runs/gpt_clm/version_0/checkpoints/last.ckpt")
    model, tokenizer = zoo.load("exports/gpt")          # a directory `zoo convert` wrote
    ids = torch.tensor([tokenizer.encode("The list type")])
    out = zoo.generation.generate(model, ids, max_new_tokens=20)
    print(tokenizer.decode(out[0, ids.shape[1]:]))

As ``AutoModel.from_pretrained`` + ``AutoTokenizer.from_pretrained`` in one call: the model is the
plain ``nn.Module`` of its family (``zoo.models.BERT``, ``GPT`` or ``T5``; adapters merged), in eval
mode; the tokenizer is the zoo one it was trained with (``zoo.data.tokenizers.Tokenizer``), checked
against what the checkpoint recorded (the tokenizer it carries, unless ``tokenizer=`` names one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoints import CheckpointError, load_checkpoint, run_checkpoint
from zoo.data.tokenizers import Tokenizer, load_tokenizer
from zoo.models.base import ZooModel

WHAT = "zoo.load:"


def matching_tokenizer(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], tokenizer_path: str | None = None, *,
    what: str = WHAT,
) -> Tokenizer:
    """The tokenizer of a checkpoint (as ``load_checkpoint`` returned it), through the one function
    that resolves and checks it (``zoo.commands.generate.load_matching_tokenizer``); messages name
    ``what`` (the command or argument) instead of ``zoo generate``.

    Raises:
        CheckpointError: It holds no tokenizer and none is given, or ``tokenizer_path`` differs
            from the one it was trained with.
        FileNotFoundError: ``tokenizer_path`` does not exist.
    """
    from zoo.commands.generate import load_matching_tokenizer

    try:
        return load_matching_tokenizer(checkpoint, str(path), tokenizer_path)
    except CheckpointError as error:
        raise CheckpointError(error.fault, path, what) from None


def load(
    path: str | os.PathLike[str], *, tokenizer: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu", what: str = WHAT,
) -> tuple[ZooModel, Tokenizer]:
    """The model and tokenizer at ``path``.

    Args:
        path: A zoo checkpoint (``.ckpt`` of ``zoo fit`` or ``zoo convert``), a run directory (its
            newest checkpoint), or a directory that ``zoo convert`` wrote (Hugging Face weights and
            ``zoo_tokenizer.model`` / ``.json``).
        tokenizer: A zoo tokenizer file to use instead of the recorded one (it must be the one the
            model was trained with).
        device: Where the model goes.
        what: How messages name the caller (``zoo eval:``, ...).

    Returns:
        ``(model, tokenizer)``: the model in eval mode on ``device``.

    Raises:
        CheckpointError: Not a zoo checkpoint, or no (matching) tokenizer; one line.
        FileNotFoundError: ``path`` or the tokenizer file does not exist.
        ValueError: A directory that is no Hugging Face model zoo reads, or whose tokenizer does
            not fit its vocabulary; one line.
    """
    source = run_checkpoint(path, what)
    if source.is_dir():
        model, found = _load_directory(source, tokenizer, what)
    elif source.exists() or source.suffix == ".ckpt":
        from zoo.adapters import merge_adapters
        from zoo.tasks.base import task_from_checkpoint

        checkpoint = load_checkpoint(source, what=what)
        found = matching_tokenizer(checkpoint, source, None if tokenizer is None else str(tokenizer), what=what)
        model = merge_adapters(task_from_checkpoint(checkpoint, str(source), what=what).model)
    else:
        raise FileNotFoundError(f"{what} {source}: no such checkpoint file or export directory")
    return model.to(device).eval(), found


def _load_directory(
    directory: Path, tokenizer: str | os.PathLike[str] | None, what: str
) -> tuple[ZooModel, Tokenizer]:
    from zoo.hf import export_tokenizer_file, from_hf

    model = from_hf(directory)
    file = Path(tokenizer) if tokenizer is not None else export_tokenizer_file(directory)
    if file is None:
        raise ValueError(f"{what} {directory} holds no zoo tokenizer (zoo_tokenizer.model or .json, which "
                         "`zoo convert` writes); pass tokenizer=PATH")
    found = load_tokenizer(file)
    if found.vocab_size != model.config.vocab_size:
        raise ValueError(f"{what} the tokenizer {file} has {found.vocab_size} ids but the model in {directory} "
                         f"has vocab_size {model.config.vocab_size}; pass the tokenizer it was trained with")
    return model, found
