"""``zoo generate``: complete prompts with a GPT or T5 checkpoint, or fill ``[MASK]``s with a BERT one.

    zoo generate runs/gpt_clm --prompt "The list type" --max-new-tokens 40
    zoo generate runs/gpt_clm --prompts-file prompts.txt --do-sample --top-p 0.9 --seed 0
    zoo generate runs/t5_span --prompt "Return the <extra_id_0> of a list."
    zoo generate runs/bert_mlm --prompt "Return the [MASK] of a list." --top-k 5
    zoo generate runs/gpt_instruct --prompt "Which module documents this? Parse a URL."

An instruction-tuned checkpoint (``zoo.data.InstructionDataModule``) is prompted in its trained
format: a decoder reads ``prompt [SEP]`` and writes the response; T5 reads ``prompt </s>`` as always.

The checkpoint opens through ``zoo.checkpoints.load_checkpoint`` (one line for a file that is not a
zoo checkpoint). The tokenizer is the one recorded in the checkpoint (``--tokenizer`` overrides it);
one whose fingerprint or vocabulary differs from the checkpoint's is refused. Each completion prints on one
line, with backslashes, newlines, carriage returns and tabs escaped as ``\\\\``, ``\\n``, ``\\r``,
``\\t``; ``--jsonl`` prints the exact text as JSON lines instead. Fill-mask prints one line per
``[MASK]``: the ``--top-k`` candidates with their probabilities.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zoo.checkpoints import CheckpointError, check_tokenizer, checkpoint_tokenizer, data_record, load_checkpoint
from zoo.data.tokenizers import BOS, CLS, EOS, MASK, PAD, SEP, Tokenizer, load_tokenizer
from zoo.generation import fill_mask
from zoo.models import BERT, GPT, T5

if TYPE_CHECKING:
    from zoo.tasks.formats import Format

MASK_MARKER = MASK
SENTINEL_MARKER = re.compile(r"<extra_id_(\d+)>")
WHAT = "zoo generate:"  # how messages name the checkpoint argument


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo generate",
        description="Complete prompts with a GPT/T5 checkpoint, or fill [MASK] with a BERT checkpoint.",
    )
    parser.add_argument("checkpoint", help="a zoo checkpoint (.ckpt) written by `zoo fit`")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="tokenizer file; default: the one recorded in the checkpoint")
    parser.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt (repeatable)")
    parser.add_argument("--prompts-file", metavar="PATH", help="a UTF-8 file with one prompt per line")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--min-new-tokens", type=int, default=0)
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy/beam search")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None,
                        help="sampling: keep the k most likely tokens; fill-mask: candidates to print (default 5)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold in (0, 1]")
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling")
    parser.add_argument("--no-cache", action="store_true", help="recompute every step (the slow reference path)")
    parser.add_argument("--crop-context", action="store_true",
                        help="decoders with a learned position table: go past max_seq_len by reading only the "
                             "last max_seq_len tokens (as nanoGPT does) instead of refusing")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts generated together")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--jsonl", action="store_true", help="print JSON lines with the exact text")
    return parser


def check_device(name: str) -> torch.device:
    """``--device`` as a torch device this machine has, else one line saying which it has."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible to this process; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0 .. "
                         f"cuda:{torch.cuda.device_count() - 1})")
    return device


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts-file {args.prompts_file!r} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"--prompts-file {args.prompts_file!r} is not UTF-8 text") from None
        prompts += [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError("no prompts: pass --prompt TEXT (repeatable) or --prompts-file PATH (one per line)")
    return prompts


def load_matching_tokenizer(
    checkpoint: Mapping[str, Any], checkpoint_path: str, tokenizer_path: str | None
) -> Tokenizer:
    """The tokenizer to use: ``tokenizer_path`` when given, checked against what the checkpoint (as
    ``load_checkpoint`` returned it) recorded at training time; else the one the checkpoint carries.

    Raises:
        CheckpointError: No tokenizer in the checkpoint and none given, or one that differs from the
            checkpoint's.
        FileNotFoundError: The tokenizer file is missing.
    """
    if tokenizer_path is None:
        tokenizer = checkpoint_tokenizer(checkpoint, checkpoint_path, WHAT)
        if tokenizer is None:
            recorded = data_record(checkpoint).get("tokenizer_file")
            moved = f" (it recorded {recorded}, which no longer exists)" if recorded else ""
            raise CheckpointError(f"holds no tokenizer{moved}; pass --tokenizer PATH", checkpoint_path, WHAT)
        return tokenizer
    if not Path(tokenizer_path).expanduser().is_file():
        raise FileNotFoundError(f"tokenizer file {tokenizer_path!r} does not exist")
    tokenizer = load_tokenizer(tokenizer_path)
    fix = "leave --tokenizer unset to use the one the checkpoint carries"
    check_tokenizer(checkpoint, fingerprint=tokenizer.fingerprint, vocab_size=tokenizer.vocab_size,
                    path=checkpoint_path, what=WHAT, fix=f"{fix} (tried {tokenizer_path})")
    return tokenizer


# ---------------------------------------------------------------------------------------------
# Text <-> ids per family


def encode_with_markers(tokenizer: Tokenizer, text: str, pattern: re.Pattern[str], marker_id: Any) -> list[int]:
    """Encode ``text``, turning each ``pattern`` match into the id ``marker_id(match)``: ``encode``
    never produces special ids from text, so markers are split out and inserted by id."""
    ids: list[int] = []
    start = 0
    for match in pattern.finditer(text):
        ids += tokenizer.encode(text[start : match.start()])
        ids.append(marker_id(match))
        start = match.end()
    return ids + tokenizer.encode(text[start:])


def sentinel_id(tokenizer: Tokenizer, match: re.Match[str]) -> int:
    index = int(match.group(1))
    if index >= len(tokenizer.sentinel_ids):
        raise ValueError(f"{match.group(0)} is not a sentinel of this tokenizer (it has "
                         f"<extra_id_0> .. <extra_id_{len(tokenizer.sentinel_ids) - 1}>)")
    return tokenizer.sentinel_ids[index]


def decode_with_sentinels(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Text of ``ids`` with span sentinels written as ``<extra_id_i>`` (T5 outputs list spans after them)."""
    names = {token_id: f"<extra_id_{i}>" for i, token_id in enumerate(tokenizer.sentinel_ids)}
    parts, piece = [], []
    for token_id in ids:
        if token_id in names:
            parts += [tokenizer.decode(piece), names[token_id]]
            piece = []
        else:
            piece.append(token_id)
    return "".join(parts) + tokenizer.decode(piece)


def token_text(tokenizer: Tokenizer, token_id: int) -> str:
    """One candidate's text; special ids (which ``decode`` skips) by their names."""
    names = {tokenizer.pad_id: PAD, tokenizer.bos_id: BOS, tokenizer.eos_id: EOS, tokenizer.mask_id: MASK,
             tokenizer.cls_id: CLS, tokenizer.sep_id: SEP}
    names.update({i: f"<extra_id_{n}>" for n, i in enumerate(tokenizer.sentinel_ids)})
    return names.get(token_id) or tokenizer.decode([token_id])


def one_line(text: str) -> str:
    """Escape what would break one-completion-per-line output (reversibly)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# The two modes


def complete(model: GPT | T5, tokenizer: Tokenizer, prompts: list[str], args: argparse.Namespace) -> None:
    from zoo.tasks.formats import format_of  # imports Lightning: after the arguments are checked

    layout = format_of(model)(tokenizer)
    generator = torch.Generator(device=args.device).manual_seed(args.seed) if args.seed is not None else None
    options = dict(
        min_new_tokens=args.min_new_tokens, do_sample=args.do_sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, num_beams=args.num_beams, length_penalty=args.length_penalty,
        use_cache=not args.no_cache, crop_context=args.crop_context, generator=generator,
    )
    for chunk in batches(prompts, args.batch_size):
        rows = [layout.prompt(encode(tokenizer, text, layout), instruction=args.instruction) for text in chunk]
        for text, row in zip(chunk, layout.generate(model, rows, args.max_new_tokens, **options), strict=True):
            completion = decode_with_sentinels(tokenizer, row)
            print(json.dumps({"prompt": text, "completion": completion}) if args.jsonl else one_line(completion))


def encode(tokenizer: Tokenizer, text: str, layout: Format) -> list[int]:
    """A prompt's ids; ``<extra_id_i>`` markers become sentinels where the format reads them (T5)."""
    if layout.reads_sentinels:
        return encode_with_markers(tokenizer, text, SENTINEL_MARKER, lambda m: sentinel_id(tokenizer, m))
    return tokenizer.encode(text)


def fill_masks(model: BERT, tokenizer: Tokenizer, prompts: list[str], args: argparse.Namespace) -> None:
    from zoo.tasks.formats import format_of

    layout = format_of(model)(tokenizer)
    top_k = args.top_k if args.top_k is not None else 5
    for text in prompts:
        if MASK_MARKER not in text:
            raise ValueError(f"fill-mask prompt {text!r} has no {MASK_MARKER}; put {MASK_MARKER} where a token "
                             "should be predicted")
    for chunk in batches(prompts, args.batch_size):
        rows = [layout.prompt(encode_with_markers(tokenizer, text, re.compile(re.escape(MASK_MARKER)),
                                                  lambda m: tokenizer.mask_id)) for text in chunk]
        model.config.check_sequence_length(max(len(row) for row in rows), "prompt length ([CLS] and [SEP] included)")
        ids, mask = layout.pad_prompts(rows)
        predictions = fill_mask(model, ids, mask, mask_token_id=tokenizer.mask_id, top_k=top_k)
        rows_of = predictions.positions[:, 0].tolist()
        for i, text in enumerate(chunk):
            masks = [
                [{"token": token_text(tokenizer, t), "token_id": t, "probability": round(p, 6)}
                 for t, p in zip(token_ids, probs, strict=True)]
                for row, token_ids, probs in zip(rows_of, predictions.token_ids.tolist(),
                                                 predictions.probs.tolist(), strict=True)
                if row == i
            ]
            if args.jsonl:
                print(json.dumps({"prompt": text, "masks": masks}))
                continue
            for candidates in masks:
                print("  ".join(f"{json.dumps(c['token'])} {c['probability']:.4f}" for c in candidates))


def trained_format(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What the checkpoint's (as ``load_checkpoint`` returned it) fine-tuning data module recorded
    about the trained format (``kind``: ``instruction`` or ``classification``); empty for
    pretraining checkpoints."""
    for entry in checkpoint.values():
        if isinstance(entry, dict) and "kind" in entry and "tokenizer_file" in entry:
            return entry
    return {}


def main(argv: list[str]) -> int:
    """Run ``zoo generate`` on ``argv`` (the arguments after ``generate``); returns the exit code.

    Raises:
        ValueError, FileNotFoundError: Bad input, in one line (``zoo`` prints it as ``zoo: error: ...``).
    """
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be >= 1")
    prompts = read_prompts(args)
    device = check_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, what=WHAT)  # imports Lightning: the arguments are fine
    tokenizer = load_matching_tokenizer(checkpoint, args.checkpoint, args.tokenizer)
    from zoo.tasks.base import task_from_checkpoint
    from zoo.tasks.formats import format_of

    model = task_from_checkpoint(checkpoint, args.checkpoint, what=WHAT).model.to(device).eval()
    trained = trained_format(checkpoint)
    if trained.get("kind") == "classification":
        raise ValueError(f"{args.checkpoint} holds a classifier, which labels text rather than writing it; "
                         f"`zoo predict --ckpt_path {args.checkpoint} --config ...` writes its predictions")
    args.instruction = trained.get("kind") == "instruction"
    from zoo.adapters import merge_adapters

    merge_adapters(model)  # LoRA and other adapters folded in: decoding then costs what the plain model does
    write = complete if format_of(model).generates else fill_masks
    write(model, tokenizer, prompts, args)
    return 0
