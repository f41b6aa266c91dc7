"""A zoo tokenizer as a Hugging Face one: ``tokenizer.json`` (built with the ``tokenizers`` library)
and ``tokenizer_config.json``, which ``AutoTokenizer.from_pretrained`` loads whole.

    save_hf_tokenizer(tokenizer, directory, shape="decoder", model_max_length=128)
    AutoTokenizer.from_pretrained(directory)      # ids equal to tokenizer.encode's, specials named

The zoo tokenizer itself travels beside them as ``zoo_tokenizer.model`` (SentencePiece) or
``zoo_tokenizer.json`` (characters): it is the one the model was trained with, what fine-tuning
from the directory and ``zoo convert`` back to a checkpoint read, and what the Hugging Face files are
derived from (``export_tokenizer_file``).

How the two kinds translate:

- **SentencePiece** (a unigram model with identity normalisation, no dummy prefix, byte fallback,
  ``"\\n"`` as a user-defined symbol): a ``tokenizers`` ``Unigram`` over the same pieces and scores,
  spaces written as ``"▁"`` by the normaliser, no pre-tokenizer (SentencePiece segments a whole
  line at once), ``"\\n"`` an added token. Pieces SentencePiece never matches in text (control
  symbols, ``<unk>``, the byte pieces ``<0x..>``) get a score no segmentation takes, so the literal
  text ``[MASK]`` or ``<0x41>`` splits into ordinary pieces as it does in SentencePiece.
- **Characters**: a ``BPE`` with no merges, so each character is its own token and an unseen one is
  ``<unk>``.

Special tokens are added tokens that text never produces (``split_special_tokens``: the zoo's rule,
"specials are inserted by id"), and are named per family shape: every shape has ``<pad>`` and
``<unk>``; a decoder names ``</s>`` both ``eos_token`` and ``bos_token`` (zoo decoders train on
documents each followed by ``</s>``, so ``</s>`` is what precedes a document: GPT-2's convention
for ``<|endoftext|>``, and what lm-eval's ``hf`` backend puts before an empty context); an
encoder-decoder ends each input with ``</s>`` (the post-processor, as T5's tokenizer) and names the
sentinels ``<extra_id_i>`` its ``additional_special_tokens``; an encoder wraps each input in
``[CLS] ... [SEP]`` and names ``[MASK]``.

One known difference: where two segmentations of a run of repeated characters have exactly the
same total score (``"*******"`` as ``** ** ** *`` or ``* ** ** **``), SentencePiece breaks the tie by
float32 rounding and ``tokenizers`` by float64; the two then pick different (equally likely)
segmentations. On the built-in corpus that is about 2 tokens in 100,000 (see the README); the text
decodes the same either way. And byte-fallback pieces that do not spell valid UTF-8 (a model can
write them; text never encodes to them) decode to one U+FFFD per byte of the run in ``tokenizers``,
where SentencePiece keeps the valid bytes among them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from zoo.data.tokenizers import (
    BOS,
    CLS,
    EOS,
    MASK,
    PAD,
    SEP,
    UNK,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    sentinel_token,
)

Shape = Literal["encoder", "decoder", "encoder-decoder"]
#: The copy of the zoo tokenizer inside an export, by kind.
ZOO_TOKENIZER_FILES = {"sentencepiece": "zoo_tokenizer.model", "char": "zoo_tokenizer.json"}
#: Written by ``save_hf_tokenizer``.
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Below every real piece score (log-probabilities of a few dozen at most): a segmentation through
# such a piece never wins while ordinary pieces or byte fallback can spell the text.
_NEVER = -1.0e6


def export_tokenizer_file(directory: str | os.PathLike[str]) -> Path | None:
    """The zoo tokenizer an export directory carries (``zoo_tokenizer.model`` or ``.json``), or None."""
    for name in ZOO_TOKENIZER_FILES.values():
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def hf_tokenizer(tokenizer: Tokenizer) -> Any:
    """The ``tokenizers.Tokenizer`` that encodes text to ``tokenizer.encode``'s ids (no post-processor).

    Raises:
        ValueError: (one line) a SentencePiece model whose normalisation or model type has no
            exact ``tokenizers`` equivalent here.
    """
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as RustTokenizer

    if isinstance(tokenizer, SentencePieceTokenizer):
        rust, user_defined = _sentencepiece_pipeline(tokenizer)
    elif isinstance(tokenizer, CharTokenizer):
        rust, user_defined = _char_pipeline(tokenizer), []
    else:
        raise ValueError(f"no Hugging Face form for a {type(tokenizer).__name__}; zoo exports SentencePiece and "
                         "character tokenizers")
    assert isinstance(rust, RustTokenizer)
    specials = [AddedToken(_piece(tokenizer, i), special=True, normalized=False) for i in tokenizer.special_ids]
    rust.add_special_tokens(specials)
    if user_defined:
        rust.add_tokens([AddedToken(piece, special=False, normalized=False) for piece in user_defined])
    rust.encode_special_tokens = True  # text never produces a special id, as in the zoo
    return rust


def _piece(tokenizer: Tokenizer, token_id: int) -> str:
    names = {tokenizer.pad_id: PAD, tokenizer.unk_id: UNK, tokenizer.bos_id: BOS, tokenizer.eos_id: EOS,
             tokenizer.mask_id: MASK, tokenizer.cls_id: CLS, tokenizer.sep_id: SEP}
    names.update({i: sentinel_token(n) for n, i in enumerate(tokenizer.sentinel_ids)})
    return names[token_id]


def _sentencepiece_pipeline(tokenizer: SentencePieceTokenizer) -> tuple[Any, list[str]]:
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, normalizers

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer._proto)
    spec, kinds = proto.normalizer_spec, sentencepiece_model_pb2.ModelProto.SentencePiece
    model_type = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)
    settings = {"model_type": model_type.lower(), "normalization": spec.name or "identity",
                "add_dummy_prefix": spec.add_dummy_prefix, "remove_extra_whitespaces": spec.remove_extra_whitespaces,
                "escape_whitespaces": spec.escape_whitespaces}
    wanted = {"model_type": "unigram", "normalization": "identity", "add_dummy_prefix": False,
              "remove_extra_whitespaces": False, "escape_whitespaces": True}
    differs = {k: v for k, v in settings.items() if wanted[k] != v}
    if differs:
        found = ", ".join(f"{k}={v!r}" for k, v in differs.items())
        raise ValueError(f"SentencePiece tokenizer {tokenizer.fingerprint} has {found}; the Hugging Face export "
                         "reproduces zoo's own settings only (unigram, identity normalisation, no dummy prefix, "
                         "whitespace kept)")
    vocab, user_defined = [], []
    for piece in proto.pieces:
        matched_in_text = piece.type in (kinds.NORMAL, kinds.USER_DEFINED)
        vocab.append((piece.piece, piece.score if matched_in_text else _NEVER))
        if piece.type == kinds.USER_DEFINED:
            user_defined.append(piece.piece)
    rust = RustTokenizer(models.Unigram(vocab, unk_id=tokenizer.unk_id, byte_fallback=proto.trainer_spec.byte_fallback))
    rust.normalizer = normalizers.Replace(" ", "\u2581")
    rust.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return rust, user_defined


def _char_pipeline(tokenizer: CharTokenizer) -> Any:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models

    vocab = {_piece(tokenizer, i): i for i in tokenizer.special_ids}
    vocab.update({char: i for i, char in tokenizer._id_to_char.items()})
    # BPE without merges: the whole text is one word split into characters, each looked up alone.
    rust = RustTokenizer(models.BPE(vocab, [], unk_token=UNK, fuse_unk=False))
    rust.decoder = decoders.Fuse()
    return rust


def special_tokens(tokenizer: Tokenizer, shape: Shape) -> dict[str, Any]:
    """The named special tokens of a family shape (``tokenizer_config.json``'s names)."""
    named: dict[str, Any] = {"pad_token": PAD, "unk_token": UNK}
    if shape == "decoder":
        named |= {"bos_token": EOS, "eos_token": EOS}
    elif shape == "encoder-decoder":
        named |= {"eos_token": EOS}
        if tokenizer.sentinel_ids:
            named["additional_special_tokens"] = [sentinel_token(i) for i in range(len(tokenizer.sentinel_ids))]
    else:
        named |= {"cls_token": CLS, "sep_token": SEP, "mask_token": MASK}
    return named


def _post_processor(tokenizer: Tokenizer, shape: Shape) -> Any:
    from tokenizers import processors

    if shape == "encoder-decoder":  # T5's inputs end with </s>
        return processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                             special_tokens=[(EOS, tokenizer.eos_id)])
    if shape == "encoder":  # BERT's [CLS] text [SEP]
        return processors.TemplateProcessing(single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
                                             special_tokens=[(CLS, tokenizer.cls_id), (SEP, tokenizer.sep_id)])
    return None  # decoders train on plain text between document separators


def save_hf_tokenizer(
    tokenizer: Tokenizer, directory: str | os.PathLike[str], *, shape: Shape, model_max_length: int
) -> list[Path]:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (for
    ``AutoTokenizer``) and the zoo tokenizer itself (``zoo_tokenizer.model`` / ``.json``) to ``directory``.

    Args:
        tokenizer: The zoo tokenizer the model was trained with.
        directory: The export directory (created if needed).
        shape: The family's shape (``zoo.models.registry.Family.shape``): which specials it names
            and what ``add_special_tokens`` adds.
        model_max_length: The model's ``max_seq_len`` (what lm-eval's ``hf`` backend truncates to).

    Returns:
        The files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rust = hf_tokenizer(tokenizer)
    processor = _post_processor(tokenizer, shape)
    if processor is not None:
        rust.post_processor = processor
    named = special_tokens(tokenizer, shape)
    config = {
        # The alias transformers 4 and 5 both resolve to their tokenizers-backed class.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        **named,
    }
    written = [directory / name for name in HF_TOKENIZER_FILES]
    _write_text(written[0], rust.to_str(pretty=True))
    _write_text(written[1], json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    _write_text(written[2], json.dumps(named, indent=2, ensure_ascii=False) + "\n")
    kind = "sentencepiece" if isinstance(tokenizer, SentencePieceTokenizer) else "char"
    for other in ZOO_TOKENIZER_FILES.values():  # one zoo tokenizer per directory
        (directory / other).unlink(missing_ok=True)
    zoo_file = directory / ZOO_TOKENIZER_FILES[kind]
    tokenizer.save(zoo_file)
    return [*written, zoo_file]


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

