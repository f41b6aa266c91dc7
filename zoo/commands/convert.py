"""``zoo convert SOURCE DEST``: Hugging Face directory <-> zoo checkpoint.

The direction follows SOURCE:
- a directory written by ``save_pretrained`` (any of ``zoo.hf.ARCHITECTURES``: BERT, GPT-2, GPT-NeoX,
  T5, LLaMA, Mistral, Mixtral, Qwen3, Gemma 2) becomes a zoo checkpoint
  that ``zoo.tasks.load_task`` opens and ``--model.init_args.pretrained`` starts fine-tuning from;
- a zoo checkpoint (a ``.ckpt`` of ``zoo fit``) becomes a Hugging Face directory that
  ``AutoModelFor{MaskedLM,CausalLM,Seq2SeqLM}.from_pretrained`` loads. Adapters (LoRA, ...) are
  merged into the weights first. A classifier is refused: no Hugging Face LM class has a place for
  its head (its zoo checkpoint is the export).

The tokenizer travels along (``zoo.hf.save_hf_tokenizer``): ``tokenizer.json`` and ``tokenizer_config.json``,
which ``AutoTokenizer.from_pretrained`` loads (same ids as the zoo tokenizer, special tokens named),
and the zoo tokenizer itself (``zoo_tokenizer.model`` / ``.json``), which fine-tuning from the
directory and a checkpoint converted back from it use. The tokenizer is the checkpoint's (checked
as ``zoo generate`` checks it: the one it carries, or ``--tokenizer PATH``); a checkpoint that records
none (one converted from a Hugging Face directory without a zoo tokenizer) exports its weights alone,
and says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning
import torch

from zoo.checkpoints import data_record, load_checkpoint, run_checkpoint
from zoo.models.registry import family_of
from zoo.tasks import LanguageModelTask

WHAT = "zoo convert:"  # how messages name the source checkpoint


def hf_to_checkpoint(source: str, dest: str) -> LanguageModelTask:
    """Write the zoo checkpoint of the Hugging Face directory ``source`` to ``dest``; returns its task."""
    from zoo.hf import from_hf

    model = from_hf(source)
    task = family_of(model).task_class(model.config)
    task.model.load_state_dict(model.state_dict())
    checkpoint = {
        # What Lightning's own checkpoints hold, so load_from_checkpoint and load_task both open it.
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    from zoo.tasks.finetune import pretrained_tokenizer

    tokenizer_file = pretrained_tokenizer(source)  # the zoo_tokenizer.* an export put beside the weights
    if tokenizer_file is not None:
        from zoo.data.tokenizers import load_tokenizer, tokenizer_state

        checkpoint["data"] = tokenizer_state(load_tokenizer(tokenizer_file), tokenizer_file)
    torch.save(checkpoint, dest)
    return task


def checkpoint_to_hf(source: str, dest: str, tokenizer_path: str | None = None) -> bool:
    """Write the Hugging Face directory of the zoo checkpoint ``source`` to ``dest``: the weights,
    and the tokenizer (``zoo.hf.save_hf_tokenizer``) unless the checkpoint records none and
    ``tokenizer_path`` names none. Returns whether a tokenizer was written.

    Raises:
        CheckpointError: ``source`` is not a zoo checkpoint, or ``tokenizer_path`` is not its tokenizer
            (one line naming the fault, see ``zoo.checkpoints``).
        FileNotFoundError: The recorded tokenizer file is gone (pass ``tokenizer_path``).
    """
    import importlib.util

    from zoo.hf import save_pretrained

    if importlib.util.find_spec("transformers") is None:
        raise ValueError("zoo convert to a Hugging Face directory needs transformers: "
                         "pip install -e '.[hf]' (or pip install transformers safetensors)")
    checkpoint = load_checkpoint(source, what=WHAT)
    from zoo.adapters import merge_adapters
    from zoo.hf import save_hf_tokenizer
    from zoo.loading import matching_tokenizer
    from zoo.tasks.base import task_from_checkpoint
    from zoo.tasks.classification import SequenceClassifier

    task = task_from_checkpoint(checkpoint, source, what=WHAT)
    if isinstance(task, SequenceClassifier):
        raise ValueError(f"zoo convert: {source} holds a {type(task).__name__}; Hugging Face LM classes have no "
                         "place for its classification head, so its zoo checkpoint is the export (load_task)")
    # Checked before anything is written: a tokenizer that moved or differs stops the export.
    tokenizer = None
    if tokenizer_path is not None or data_record(checkpoint):
        tokenizer = matching_tokenizer(checkpoint, source, tokenizer_path, what=WHAT)
    model = merge_adapters(task.model)
    save_pretrained(model, dest)
    if tokenizer is not None:
        save_hf_tokenizer(tokenizer, dest, shape=family_of(model).shape, model_max_length=model.config.max_seq_len)
    return tokenizer is not None


def main(argv: list[str]) -> int:
    """Entry point of ``zoo convert``; bad input raises a one-line ValueError (``zoo.cli.main`` prints it)."""
    from zoo.hf import ARCHITECTURES
    parser = argparse.ArgumentParser(
        prog="zoo convert",
        description="Convert a Hugging Face model directory to a zoo checkpoint, or a zoo checkpoint to a "
        "Hugging Face directory; the direction follows SOURCE. Architectures (config.json's model_type): "
        f"{', '.join(sorted(ARCHITECTURES))}.",
    )
    parser.add_argument("source", help="a save_pretrained directory, or a zoo .ckpt file")
    parser.add_argument("dest", help="the zoo .ckpt file to write, or the directory to write the Hugging Face model to")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="checkpoint -> directory: the zoo tokenizer file to export (default: the checkpoint's)")
    args = parser.parse_args(argv)
    source, dest = Path(args.source), Path(args.dest)
    if not source.exists():
        raise FileNotFoundError(f"zoo convert: {source}: no such file or directory")
    source = run_checkpoint(source, WHAT)  # a run directory stands for its newest checkpoint
    if dest.exists() and not args.overwrite and not (dest.is_dir() and not any(dest.iterdir())):
        raise ValueError(f"zoo convert: {dest} exists; pass --overwrite to replace it")
    if source.is_dir():
        if args.tokenizer is not None:
            raise ValueError("zoo convert: --tokenizer applies to a checkpoint -> directory export; a directory "
                             "converted to a checkpoint takes the zoo_tokenizer.* it holds")
        if dest.is_dir():
            raise ValueError(f"zoo convert: {dest} is a directory; converting {source} writes a checkpoint file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        task = hf_to_checkpoint(str(source), str(dest))
        print(f"zoo convert: {source} -> {dest} ({type(task).__name__}, {type(task.model).__name__}, "
              f"{task.model.num_parameters():,} parameters)")
    else:
        if dest.is_file():
            raise ValueError(f"zoo convert: {dest} is a file; converting a checkpoint writes a directory")
        if checkpoint_to_hf(str(source), str(dest), args.tokenizer):
            print(f"zoo convert: {source} -> {dest} (Hugging Face directory: model and tokenizer)")
        else:
            print(f"zoo convert: {source} -> {dest} (Hugging Face directory: weights only; the checkpoint records "
                  "no tokenizer: pass --tokenizer PATH to export one)")
    return 0
