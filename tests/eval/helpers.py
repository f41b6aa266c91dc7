"""Small zoo checkpoints with a real tokenizer (trained on the built-in corpus), made without a
training run: the layout ``zoo fit`` and ``zoo convert`` write, with the data module's record."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import lightning
import torch

from zoo.data.corpus import builtin_corpus
from zoo.data.tokenizers import CharTokenizer, Tokenizer, cached_tokenizer_file, load_tokenizer, tokenizer_state
from zoo.models.registry import get_family

#: Small model shapes per family (fast on a CPU, still more than one layer).
SHAPES = {
    "gpt": dict(embed_dim=32, num_layers=2, num_heads=4, max_seq_len=128),
    "llama": dict(embed_dim=32, num_layers=2, num_heads=4, num_kv_heads=2, max_seq_len=128),
    "t5": dict(embed_dim=32, num_layers=2, num_heads=4, max_seq_len=128),
    "bert": dict(embed_dim=32, num_layers=2, num_heads=4, max_seq_len=128),
}


@functools.cache
def corpus() -> tuple[str, ...]:
    return tuple(builtin_corpus())


@functools.cache
def tokenizer_file(kind: str = "sentencepiece") -> Path:
    """A tokenizer trained on the built-in corpus, cached in the session's ZOO_CACHE_DIR."""
    if kind == "char":
        return cached_tokenizer_file(corpus(), os.environ["ZOO_CACHE_DIR"], kind="char")
    return cached_tokenizer_file(corpus(), os.environ["ZOO_CACHE_DIR"], vocab_size=1000)


def tokenizer(kind: str = "sentencepiece") -> Tokenizer:
    return load_tokenizer(tokenizer_file(kind))


def make_checkpoint(path: Path, family: str, kind: str = "sentencepiece", seed: int = 0, **config) -> Path:
    """A randomly initialised checkpoint of ``family`` whose data record names the tokenizer."""
    tok = tokenizer(kind)
    fam = get_family(family)
    torch.manual_seed(seed)
    model_config = fam.make_config(**{**SHAPES[family], "vocab_size": tok.vocab_size, "pad_token_id": tok.pad_id,
                                      "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, **config})
    task = fam.task_class(model_config)
    checkpoint = {
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "TextDataModule": tokenizer_state(tok, tokenizer_file(kind)),  # what zoo fit saves: the bytes too
    }
    task.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


__all__ = ["CharTokenizer", "SHAPES", "corpus", "make_checkpoint", "tokenizer", "tokenizer_file"]
