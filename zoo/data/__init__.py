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

__all__ = [
    "CharTokenizer",
    "SentencePieceTokenizer",
    "TextDataModule",
    "Tokenizer",
    "builtin_corpus",
    "load_texts",
    "load_tokenizer",
    "split_documents",
]


def __getattr__(name: str) -> Any:
    if name == "TextDataModule":
        from zoo.data.datamodule import TextDataModule

        return TextDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
