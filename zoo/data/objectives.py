"""Pretraining objectives as pure functions on token ids, and the collators that batch them.

Shapes: b batch, t sequence (or decoder) length, s encoder length.

Mask convention for all of zoo: boolean, True = a real token that may be attended to (as in
`F.scaled_dot_product_attention`'s boolean `attn_mask` and Hugging Face's `attention_mask == 1`).
Labels use -100 (`IGNORE_INDEX`) where nothing is predicted, as `F.cross_entropy` ignores by default.

Randomness comes from an explicit `torch.Generator`, so every function is reproducible. Collators
draw fresh masks every epoch for training — from per-example seeds when the examples carry them, so
a resumed run repeats them exactly — and the same masks every time for validation.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

IGNORE_INDEX = -100

Example = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Packing


def pack_blocks(
    sequences: Iterable[Sequence[int]],
    block_size: int,
    *,
    eos_id: int,
    bos_id: int | None = None,
    drop_remainder: bool = True,
) -> list[list[int]]:
    """Concatenate documents, each followed by eos (and preceded by bos if given), into blocks.

    Args:
        sequences: Token ids per document, without specials.
        block_size: Length of every block.
        eos_id: Appended to each document, so the model sees where documents end.
        bos_id: Prepended to each document when not None.
        drop_remainder: Drop the final short block (causal LM: every block full, no padding);
            keep it for objectives that pad anyway.

    Returns:
        Blocks of exactly `block_size` ids (the last may be shorter if `drop_remainder` is False).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    stream: list[int] = []
    for ids in sequences:
        if bos_id is not None:
            stream.append(bos_id)
        stream.extend(ids)
        stream.append(eos_id)
    end = len(stream) - len(stream) % block_size if drop_remainder else len(stream)
    return [stream[start : start + block_size] for start in range(0, end, block_size)]


def pad_sequences(sequences: Sequence[Sequence[int] | Tensor], pad_value: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest sequence.

    Returns:
        `(ids, mask)`: (b, t) long ids and (b, t) bool, True at real tokens.
    """
    rows = [torch.as_tensor(seq, dtype=torch.long) for seq in sequences]
    lengths = torch.tensor([len(row) for row in rows])
    width = int(lengths.max()) if len(rows) else 0
    ids = torch.full((len(rows), width), pad_value, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (b, t)
    return ids, mask


# ---------------------------------------------------------------------------------------------
# Masked language modelling (BERT)


def mask_tokens(
    input_ids: Tensor,
    *,
    maskable: Tensor,
    mask_id: int,
    random_ids: Tensor,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT masking: pick a fraction of maskable tokens; 80 % [MASK], 10 % random, 10 % kept.

    Each row gets exactly `max(1, round(mlm_probability * n))` picks among its `n` maskable
    tokens (as in BERT's data generator), so short rows still teach something and the rate does
    not drift with batch size.

    Args:
        input_ids: (b, t) ids.
        maskable: (b, t) bool, True where a token may be picked (not special, not padding).
        mask_id: The [MASK] id.
        random_ids: 1-D ids to draw random replacements from (the non-special vocabulary).
        mlm_probability: Fraction of maskable tokens to predict.
        generator: Source of randomness.

    Returns:
        `(inputs, labels)`: (b, t) corrupted ids, and (b, t) labels holding the original id at
        picked positions and -100 elsewhere.
    """
    scores = torch.rand(input_ids.shape, generator=generator)
    scores = scores.masked_fill(~maskable, 2.0)  # above any real score: never picked first
    rank = scores.argsort(dim=1).argsort(dim=1)  # (b, t): 0 for the lowest score in the row
    available = maskable.sum(dim=1, keepdim=True)
    budget = (available * mlm_probability).round().long().clamp(min=1).minimum(available)
    picked = rank < budget  # (b, t)

    labels = input_ids.masked_fill(~picked, IGNORE_INDEX)
    roll = torch.rand(input_ids.shape, generator=generator)
    to_mask = picked & (roll < 0.8)
    to_random = picked & (roll >= 0.8) & (roll < 0.9)
    # index_select, not random_ids[...]: advanced indexing with a fresh index tensor costs
    # milliseconds on a busy multi-threaded CPU, and this runs once per batch.
    picks = torch.randint(len(random_ids), (input_ids.numel(),), generator=generator)
    draws = random_ids.index_select(0, picks).view_as(input_ids)
    inputs = input_ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, draws, inputs)
    return inputs, labels


# ---------------------------------------------------------------------------------------------
# Span corruption (T5)


def _noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of `length`, as in T5's `random_spans_noise_mask`."""
    if length < 2:
        return 0, 0
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    # Each span needs a kept token before it; T5 never hits this at its densities, we clamp.
    return num_noise, min(num_spans, num_noise, length - num_noise)


def span_corruption_lengths(
    length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int, int]:
    """Sizes after corrupting `length` tokens (they do not depend on the random draw).

    Returns:
        `(input_length, target_length, num_spans)`, eos included in both lengths.
    """
    num_noise, num_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    return length - num_noise + num_spans + 1, num_noise + num_spans + 1, num_spans


def span_corruption_raw_length(
    max_input_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> int:
    """The longest raw chunk whose corrupted input (with eos) fits in `max_input_length`.

    T5 feeds chunks longer than the encoder length because corruption shortens them; this is the
    same idea as its `compute_input_and_target_lengths`.
    """
    if max_input_length < 2:
        raise ValueError(f"max_input_length must be >= 2, got {max_input_length}")
    length = max_input_length - 1
    while span_corruption_lengths(length + 1, noise_density, mean_noise_span_length)[0] <= max_input_length:
        length += 1
    return length


def _random_segmentation(num_items: int, num_segments: int, rng: random.Random) -> list[int]:
    """Split `num_items` into `num_segments` positive lengths, uniformly over all such splits."""
    bounds = [0, *sorted(rng.sample(range(1, num_items), num_segments - 1)), num_items]
    return [end - start for start, end in itertools.pairwise(bounds)]


def random_spans_noise_mask(
    length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """T5's noise mask: `round(length * density)` noise tokens in `round(noise / mean)` spans.

    Kept and noise spans alternate, starting with a kept span and ending with a noise span; the
    span lengths come from random segmentation, so spans are contiguous and never adjacent.

    Returns:
        (length,) bool, True at noise tokens.
    """
    num_noise, num_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    if num_spans == 0:
        return torch.zeros(length, dtype=torch.bool)
    # One draw from the torch generator seeds the rest: a few dozen tiny torch ops per sequence
    # would cost far more than the Python below (this runs per example in the collator).
    rng = random.Random(int(torch.randint(2**62, (), generator=generator)))
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    kept_lengths = _random_segmentation(length - num_noise, num_spans, rng)
    mask: list[bool] = []
    for kept, noise in zip(kept_lengths, noise_lengths, strict=True):
        mask += [False] * kept + [True] * noise
    return torch.tensor(mask)


def corrupt_spans(
    ids: Sequence[int] | Tensor,
    noise_mask: Tensor,
    *,
    sentinel_ids: Sequence[int],
    eos_id: int,
) -> tuple[list[int], list[int]]:
    """Replace each noise span with the next sentinel; targets list the spans after their sentinel.

    For ids `a b c d e` with noise `c d`: inputs `a b <0> e </s>`, targets `<0> c d </s>`.

    Returns:
        `(inputs, targets)`, both ending with eos.

    Raises:
        ValueError: More spans than sentinels.
    """
    tokens = _as_list(ids)
    noise = noise_mask.tolist()
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for position, (token, is_noise) in enumerate(zip(tokens, noise, strict=True)):
        if not is_noise:
            inputs.append(token)
            continue
        if position == 0 or not noise[position - 1]:
            span += 1
            if span >= len(sentinel_ids):
                raise ValueError(
                    f"span corruption needs more than {len(sentinel_ids)} sentinels; shorten "
                    f"max_seq_len or raise mean_noise_span_length"
                )
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        targets.append(token)
    inputs.append(eos_id)
    targets.append(eos_id)
    return inputs, targets


def _as_list(ids: Sequence[int] | Tensor) -> list[int]:
    return ids.tolist() if isinstance(ids, Tensor) else list(ids)


# ---------------------------------------------------------------------------------------------
# Collators


def mix_seeds(*values: int | bytes) -> int:
    """A 63-bit seed from several values; stable across processes and runs (unlike `hash`)."""
    digest = hashlib.blake2b(digest_size=8)
    for value in values:
        digest.update(value if isinstance(value, bytes) else int(value).to_bytes(16, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") >> 1


SEED_KEY = "seed"  # optional per-example entry: the seed of that example's random corruption


@dataclass(kw_only=True)
class _Seeded:
    """Randomness for collators, in order of precedence:

    - Examples that carry a `seed` (the training loader's sampler draws one per example from
      (seed, epoch, rank, position)): the batch's generator is seeded from them, so the masks are a
      function of where the batch sits in the run — a resumed run draws exactly the masks the
      uninterrupted one would, whatever the number of workers.
    - Validation (`deterministic=True`): seeded from the batch contents, so the same batch gets the
      same masks in every epoch.
    - Otherwise one generator per process, continued across batches and epochs. In a DataLoader
      worker it is reseeded from the worker's seed, so workers never repeat each other.
    """

    seed: int = 0
    deterministic: bool = False
    _generator: torch.Generator | None = field(default=None, init=False, repr=False)
    _worker_seed: int | None = field(default=None, init=False, repr=False)

    def generator_for(self, batch_ids: Tensor, examples: Sequence[Example] = ()) -> torch.Generator:
        if examples and all(SEED_KEY in example for example in examples):
            return torch.Generator().manual_seed(mix_seeds(self.seed, *(int(e[SEED_KEY]) for e in examples)))
        if self.deterministic:
            content = batch_ids.numpy().tobytes()
            return torch.Generator().manual_seed(mix_seeds(self.seed, content))
        info = get_worker_info()
        worker_seed = None if info is None else info.seed
        if self._generator is None or worker_seed != self._worker_seed:
            seed = self.seed if worker_seed is None else mix_seeds(self.seed, worker_seed)
            self._generator = torch.Generator().manual_seed(seed)
            self._worker_seed = worker_seed
        return self._generator


def _input_ids(examples: Sequence[Example]) -> list[list[int]]:
    return [_as_list(example["input_ids"]) for example in examples]


@dataclass
class CLMCollator:
    """Stack packed blocks; labels equal inputs (the model or loss shifts, Hugging Face style).

    Batch: `input_ids` (b, t) long, `labels` (b, t) long. No `attention_mask`: blocks are full, so
    attention can take the fast `is_causal=True` path.
    """

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        input_ids = torch.tensor(_input_ids(examples), dtype=torch.long)  # (b, t)
        return {"input_ids": input_ids, "labels": input_ids.clone()}


@dataclass(kw_only=True)
class MLMCollator(_Seeded):
    """`[CLS] ids [SEP]`, truncated to `max_seq_len`, padded to the longest row, then BERT-masked.

    Batch: `input_ids` (b, t) long, `attention_mask` (b, t) bool, `labels` (b, t) long with -100
    where nothing is predicted.
    """

    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: Sequence[int]
    vocab_size: int
    max_seq_len: int = 128
    mlm_probability: float = 0.15

    def __post_init__(self) -> None:
        is_special = torch.zeros(self.vocab_size, dtype=torch.bool)
        is_special[list(self.special_ids)] = True
        self._is_special = is_special
        self._random_ids = (~is_special).nonzero().flatten()

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        body = self.max_seq_len - 2
        rows = [[self.cls_id, *ids[:body], self.sep_id] for ids in _input_ids(examples)]
        input_ids, attention_mask = pad_sequences(rows, self.pad_id)  # (b, t)
        is_special = self._is_special.index_select(0, input_ids.flatten()).view_as(input_ids)
        maskable = attention_mask & ~is_special
        inputs, labels = mask_tokens(
            input_ids,
            maskable=maskable,
            mask_id=self.mask_id,
            random_ids=self._random_ids,
            mlm_probability=self.mlm_probability,
            generator=self.generator_for(input_ids, examples),
        )
        return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}


@dataclass(kw_only=True)
class SpanCorruptionCollator(_Seeded):
    """T5 span corruption of each example, padded to the longest inputs / targets in the batch.

    Batch: `input_ids` (b, s) long, `attention_mask` (b, s) bool, `labels` (b, t) long with -100
    at padding, `decoder_input_ids` (b, t) long (labels shifted right, starting with pad as
    T5's decoder start token), `decoder_attention_mask` (b, t) bool.
    """

    pad_id: int
    eos_id: int
    sentinel_ids: Sequence[int]
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        rows = _input_ids(examples)
        generator = self.generator_for(pad_sequences(rows, self.pad_id)[0], examples)
        inputs, targets = [], []
        for ids in rows:
            noise = random_spans_noise_mask(len(ids), self.noise_density, self.mean_noise_span_length, generator)
            source, target = corrupt_spans(ids, noise, sentinel_ids=self.sentinel_ids, eos_id=self.eos_id)
            inputs.append(source)
            targets.append(target)
        input_ids, attention_mask = pad_sequences(inputs, self.pad_id)  # (b, s)
        target_ids, decoder_attention_mask = pad_sequences(targets, self.pad_id)  # (b, t)
        labels = target_ids.masked_fill(~decoder_attention_mask, IGNORE_INDEX)
        decoder_input_ids = torch.full_like(target_ids, self.pad_id)
        decoder_input_ids[:, 1:] = target_ids[:, :-1]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_attention_mask,
        }
