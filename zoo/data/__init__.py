"""Data for zoo: corpora, tokenizers, pretraining objectives and the Lightning DataModule.

Corpora, tokenizers and objectives import without Lightning; `TextDataModule` (which needs it) is
imported on first use, so models and notebooks can tokenize without paying for Lightning.
"""

from typing import TYPE_CHECKING, Any

from zoo.data.corpus import builtin_corpus, load_texts
from zoo.data.splits import split_documents
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer, Tokenizer, load_tokenizer

if TYPE_CHECKING:
    from zoo.data.datamodule import TextDataModule
    from zoo.data.instruction import InstructionDataModule
    from zoo.data.labelled import LabelledTextDataModule

__all__ = [
    "CharTokenizer",
    "InstructionDataModule",
    "LabelledTextDataModule",
    "SentencePieceTokenizer",
    "TextDataModule",
    "Tokenizer",
    "builtin_corpus",
    "load_texts",
    "load_tokenizer",
    "split_documents",
]


# Data modules (which need Lightning) by name -> their module, imported on first use.
_LAZY = {
    "TextDataModule": "zoo.data.datamodule",
    "LabelledTextDataModule": "zoo.data.labelled",
    "InstructionDataModule": "zoo.data.instruction",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
