"""Text generation for the decoder (``GPT``) and encoder-decoder (``T5``) families, and fill-mask for
the encoder family (``BERT``).

One entry point, ``generate(model, input_ids, attention_mask, max_new_tokens=..., ...)``, with the
names and meanings of Hugging Face's ``model.generate``: greedy decoding, sampling (temperature,
top-k, top-p, seeded by a ``torch.Generator``), beam search with a length penalty, ``min_new_tokens``
and stopping on eos. It returns what Hugging Face returns: for a decoder the prompt followed by the
new tokens, for an encoder-decoder the decoder sequence starting with the decoder start token; rows
that finished early are padded with ``pad_token_id``.

How a model is driven lives in two small "decoding state" classes, one per family, each with a
cached and an uncached mode behind the same three methods (``start``, ``step``, ``reorder``); the
search strategies (``_greedy_or_sample``, ``_beam_search``) only see next-token logits. So the cached
and uncached paths differ in nothing but how the logits are computed, which is what the tests compare.

Per token on a CPU, a small model's decoding step is mostly its matmuls, so those are trimmed: the
vocabulary head runs on the last position only (as Hugging Face's ``logits_to_keep=1``: scoring every
position of an uncached step was two fifths of its multiply-adds at width 256 and vocabulary 8,000),
and while generating the
head's and the stacked q/k/v weights are kept transposed (``frozen_output_head``,
``frozen_projections``), the layout a CPU multiplies a few rows by fastest.

Shapes: b batch, k beams, s prompt len, n new tokens, v vocab.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.attention import frozen_projections
from zoo.models import BERT, GPT, T5
from zoo.models.base import frozen_output_head

EarlyStopping = Literal[True, False, "never"]


@dataclass
class GenerationConfig:
    """How to generate: Hugging Face's ``GenerationConfig`` names, checked on construction.

    Args:
        max_new_tokens: Tokens to generate at most (each row stops earlier at eos).
        min_new_tokens: Eos cannot be chosen before this many new tokens.
        do_sample: Sample from the (filtered) distribution; False = greedy or beam search.
        temperature: Divides the logits before sampling; > 0 (only used when sampling).
        top_k: Sample among the k most likely tokens only; null = no limit. (Hugging Face defaults
            to 50; zoo filters only when asked.)
        top_p: Nucleus sampling: sample among the smallest set of tokens whose probability
            reaches ``top_p``, in (0, 1]; null = no limit.
        num_beams: Beam width; 1 = greedy or sampling. Not combined with ``do_sample``.
        length_penalty: Beam hypotheses are ranked by ``sum(log p) / length ** length_penalty``
            (length = generated tokens, eos included): > 0 favours longer outputs.
        early_stopping: Beam search stops: True as soon as ``num_beams`` hypotheses finished;
            False when the best running beam, at its current length, cannot beat the worst
            finished one (Hugging Face's default heuristic); "never" when no running beam can
            beat it at any reachable length (exact).
        eos_token_id: Ends a row; null = the model config's ``eos_token_id``.
        pad_token_id: Fills rows that ended; null = the model config's ``pad_token_id``.
        decoder_start_token_id: First decoder token of an encoder-decoder; null = the pad id
            (T5's convention).
        use_cache: Reuse keys/values of earlier steps (fast); False recomputes the whole
            sequence every step (the reference the cache is tested against).
        crop_context: A decoder with a learned position table may run past ``max_seq_len``: once
            prompt + new tokens overflow the table, each step reads only the last ``max_seq_len``
            tokens, at positions 0.., as nanoGPT does (the cache cannot survive a slide, so those
            steps are uncached). False = refuse in one line. Other position schemes have no table
            and never crop; an encoder-decoder's input must still fit.
        seed: Seeds a fresh ``torch.Generator`` for sampling (or pass ``generator=``).
    """

    max_new_tokens: int = 20
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: EarlyStopping = False
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    decoder_start_token_id: int | None = None
    use_cache: bool = True
    crop_context: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(self.max_new_tokens >= 1, f"max_new_tokens={self.max_new_tokens} must be >= 1")
        check(0 <= self.min_new_tokens <= self.max_new_tokens,
              f"min_new_tokens={self.min_new_tokens} must be in [0, max_new_tokens={self.max_new_tokens}]")
        check(self.temperature > 0, f"temperature={self.temperature} must be > 0 (for greedy decoding use "
                                    "do_sample=False; a tiny temperature such as 1e-5 is nearly greedy)")
        check(self.top_k is None or self.top_k >= 1, f"top_k={self.top_k} must be >= 1 (or None for no limit)")
        check(self.top_p is None or 0 < self.top_p <= 1, f"top_p={self.top_p} must be in (0, 1] (or None)")
        check(self.num_beams >= 1, f"num_beams={self.num_beams} must be >= 1")
        check(not (self.do_sample and self.num_beams > 1),
              f"num_beams={self.num_beams} with do_sample=True (beam sampling) is not supported; "
              "use num_beams=1 to sample or do_sample=False for beam search")
        check(self.early_stopping in (True, False, "never"),
              f"early_stopping={self.early_stopping!r} must be True, False or 'never'")
        for name in ("eos_token_id", "pad_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            check(value is None or value >= 0, f"{name}={value} must be a token id >= 0 (or None)")


# ---------------------------------------------------------------------------------------------
# Filtering next-token distributions


def top_k_filter(logits: Tensor, top_k: int) -> Tensor:
    """Keep the ``top_k`` largest logits per row (ties with the k-th included); the rest → -inf."""
    if top_k >= logits.shape[-1]:
        return logits
    kth = logits.topk(top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probabilities sum to at
    least ``top_p`` (the most likely token always stays); the rest → -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.float().softmax(dim=-1)
    # A token stays while the tokens ranked above it hold less than top_p of the mass.
    mass_above = torch.cat((torch.zeros_like(probs[..., :1]), probs.cumsum(dim=-1)[..., :-1]), dim=-1)
    drop_sorted = mass_above >= top_p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def _suppress(logits: Tensor, token_id: int) -> Tensor:
    logits = logits.clone()
    logits[:, token_id] = float("-inf")
    return logits


# ---------------------------------------------------------------------------------------------
# Decoding states: how each family turns "the tokens so far" into next-token logits


class _CausalState:
    """A decoder-only model over a left-padded prompt. Positions count real tokens only
    (``cumsum(attention_mask) - 1``), so each row sees the positions it would see alone.

    With a ``window`` (``crop_context`` on a learned table), a sequence longer than the window is
    read as its last ``window`` tokens, positions restarting at 0: every such step is a fresh,
    uncached forward, since sliding the window moves every key to another position."""

    def __init__(
        self, model: GPT, input_ids: Tensor, attention_mask: Tensor | None, use_cache: bool, room: int,
        window: int | None = None,
    ):
        b, s = input_ids.shape
        self.model, self.length, self.window = model, s, window
        self.cache = model.new_cache() if use_cache else None
        if use_cache:
            self.cache.reserve(s + room if window is None else min(s + room, window))
        padded = attention_mask is not None and not bool(attention_mask.all())
        # Buffers sized for the whole run, so steps slice instead of concatenating.
        self.ids = torch.cat((input_ids, input_ids.new_zeros(b, room)), dim=1)
        self.mask = self.positions = None
        if padded:
            mask = attention_mask.bool()
            self.mask = torch.cat((mask, mask.new_ones(b, room)), dim=1)  # (b, s + room)
            start = mask.long().cumsum(dim=-1) - 1  # (b, s)
            steps = start[:, -1:] + torch.arange(1, room + 1, device=mask.device)  # (b, room)
            self.positions = torch.cat((start.clamp(min=0), steps), dim=1)

    def _forward(self, start: int, end: int) -> Tensor:
        """Logits of the last token after feeding tokens ``start:end`` (all of ``:end`` uncached)."""
        if self.window is not None and end > self.window:
            return self._forward_cropped(end)
        if self.cache is None:
            start = 0
        mask = self.mask[:, :end] if self.mask is not None else None
        positions = self.positions[:, start:end] if self.positions is not None else None
        hidden = self.model.hidden_states(self.ids[:, start:end], mask, position_ids=positions, cache=self.cache)
        return self.model.logits(hidden[:, -1])  # (b, v): the head on the last position only

    def _forward_cropped(self, end: int) -> Tensor:
        """Logits of the last token reading only tokens ``end - window:end``, at positions from 0."""
        self.cache = None  # positions restart in every window: no earlier key is valid any more
        start = end - self.window
        mask = positions = None
        if self.mask is not None:
            mask = self.mask[:, start:end]
            positions = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (b, window)
        hidden = self.model.hidden_states(self.ids[:, start:end], mask, position_ids=positions)
        return self.model.logits(hidden[:, -1])  # (b, v)

    def start(self) -> Tensor:
        return self._forward(0, self.length)

    def step(self, tokens: Tensor) -> Tensor:
        self.ids[:, self.length] = tokens
        self.length += 1
        return self._forward(self.length - 1, self.length)

    def reorder(self, index: Tensor) -> None:
        self.ids = self.ids.index_select(0, index)
        if self.mask is not None:
            self.mask, self.positions = self.mask.index_select(0, index), self.positions.index_select(0, index)
        if self.cache is not None:
            self.cache.reorder(index)


class _Seq2SeqState:
    """An encoder-decoder model: encode once, then decode from ``decoder_start_token_id``."""

    def __init__(
        self, model: T5, input_ids: Tensor, attention_mask: Tensor | None, use_cache: bool, room: int, start_id: int
    ):
        b = input_ids.shape[0]
        self.model, self.length = model, 1
        # An all-ones mask changes nothing; dropping it lets attention take the unmasked fast path.
        self.mask = attention_mask.bool() if attention_mask is not None and not bool(attention_mask.all()) else None
        self.encoded = model.encode(input_ids, self.mask)  # (b, s, e)
        self.cache = model.new_cache() if use_cache else None
        if use_cache:
            self.cache.reserve(1 + room)
        self.ids = input_ids.new_zeros(b, 1 + room)
        self.ids[:, 0] = start_id

    def _forward(self) -> Tensor:
        start = self.length - 1 if self.cache is not None else 0
        hidden = self.model.decoder_hidden_states(self.ids[:, start : self.length], self.encoded, self.mask,
                                                  cache=self.cache)
        return self.model.logits(hidden[:, -1])  # (b, v): the head on the last position only

    def start(self) -> Tensor:
        return self._forward()

    def step(self, tokens: Tensor) -> Tensor:
        self.ids[:, self.length] = tokens
        self.length += 1
        return self._forward()

    def reorder(self, index: Tensor) -> None:
        self.ids, self.encoded = self.ids.index_select(0, index), self.encoded.index_select(0, index)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)
        if self.cache is not None:
            self.cache.reorder(index)


_State = _CausalState | _Seq2SeqState


# ---------------------------------------------------------------------------------------------
# Search strategies


def _greedy_or_sample(
    state: _State, config: GenerationConfig, eos: int | None, pad: int, generator: torch.Generator | None
) -> Tensor:
    """Greedy decoding or sampling; returns the new tokens ``(b, n)``, n <= max_new_tokens."""
    logits = state.start()
    unfinished = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    new_tokens = []
    for step in range(config.max_new_tokens):
        if eos is not None and step < config.min_new_tokens:
            logits = _suppress(logits, eos)
        if config.do_sample:
            scores = logits.float() / config.temperature
            if config.top_k is not None:
                scores = top_k_filter(scores, config.top_k)
            if config.top_p is not None:
                scores = top_p_filter(scores, config.top_p)
            tokens = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)  # (b,)
        else:
            tokens = logits.argmax(dim=-1)  # (b,)
        if eos is not None and step >= config.min_new_tokens:  # before that, eos cannot be chosen
            tokens = torch.where(unfinished, tokens, pad)
            unfinished &= tokens != eos
        new_tokens.append(tokens)
        if step + 1 == config.max_new_tokens or (
            eos is not None and step >= config.min_new_tokens and not bool(unfinished.any())
        ):
            break
        logits = state.step(tokens)
    return torch.stack(new_tokens, dim=1)


def _beam_search(state: _State, config: GenerationConfig, eos: int | None, pad: int) -> Tensor:
    """Beam search with Hugging Face's bookkeeping; returns the best hypothesis' tokens ``(b, n)``.

    Each step scores every one-token extension of the ``k`` running beams and keeps the ``2k``
    best: those of the first ``k`` that end (eos, or the last step) enter a pool of ``k`` finished
    hypotheses ranked by ``sum(log p) / length ** length_penalty``; the best ``k`` that do not end
    run on. ``2k`` candidates always leave ``k`` to run on, since only one per beam can be eos.
    """
    k, n, penalty = config.num_beams, config.max_new_tokens, config.length_penalty
    logits = state.start()
    b, v = logits.shape
    device = logits.device
    # Every beam starts as the same prompt: compute it once, then copy rows (and the cache) k times.
    expand = torch.arange(b, device=device).repeat_interleave(k)
    state.reorder(expand)
    logits = logits.index_select(0, expand)

    running = torch.full((b, k), float("-inf"), device=device)
    running[:, 0] = 0.0  # identical beams: extend only the first, or the top-k would be k copies
    history = torch.full((b, k, n), pad, dtype=torch.long, device=device)  # tokens of running beams
    pool_scores = torch.full((b, k), float("-inf"), device=device)
    pool_tokens = history.clone()
    pool_lengths = torch.zeros(b, k, dtype=torch.long, device=device)
    closed = torch.zeros(b, dtype=torch.bool, device=device)  # no candidate can improve the pool
    width = min(2 * k, k * v)
    first_k = torch.arange(width, device=device) < k
    beam_offsets = torch.arange(b, device=device)[:, None] * k

    def gather_beams(values: Tensor, index: Tensor) -> Tensor:  # (b, k', ...) rows picked by (b, m)
        return values.gather(1, index.view(*index.shape, *([1] * (values.dim() - 2))).expand(
            *index.shape, *values.shape[2:]))

    for step in range(n):
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (b·k, v)
        if eos is not None and step < config.min_new_tokens:
            log_probs[:, eos] = float("-inf")
        totals = (running.view(-1, 1) + log_probs).view(b, k * v)
        scores, flat = totals.topk(width, dim=-1)  # (b, 2k), best first
        source, tokens = flat // v, flat % v
        candidates = gather_beams(history, source)  # (b, 2k, n), a copy
        candidates[:, :, step] = tokens
        last = step + 1 == n
        ends = torch.ones_like(tokens, dtype=torch.bool) if last else (
            tokens == eos if eos is not None else torch.zeros_like(tokens, dtype=torch.bool))

        finishing = ends & first_k & ~closed[:, None] & (scores > float("-inf"))
        normalized = torch.where(finishing, scores / (step + 1) ** penalty, float("-inf"))
        pool_scores, keep = torch.cat((pool_scores, normalized), dim=1).topk(k, dim=-1)
        pool_tokens = gather_beams(torch.cat((pool_tokens, candidates), dim=1), keep)
        lengths = torch.full_like(tokens, step + 1)
        pool_lengths = torch.cat((pool_lengths, lengths), dim=1).gather(1, keep)
        if last:
            break

        running, pick = scores.masked_fill(ends, float("-inf")).topk(k, dim=-1)  # (b, k)
        history = gather_beams(candidates, pick)
        next_tokens, next_source = tokens.gather(1, pick), source.gather(1, pick)

        pool_full = (pool_scores > float("-inf")).all(dim=-1)
        if config.early_stopping is True:
            closed |= pool_full
        else:
            reachable = step + 1
            best_possible = running[:, 0] / reachable**penalty
            closed |= pool_full & (best_possible <= pool_scores[:, -1])
        if bool(closed.all()):
            break
        state.reorder((next_source + beam_offsets).view(-1))
        logits = state.step(next_tokens.view(-1))

    longest = int(pool_lengths[:, 0].max())
    return pool_tokens[:, 0, :longest]


# ---------------------------------------------------------------------------------------------
# The entry point


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Generation never uses dropout and never changes weights; the model's mode is restored
    afterwards."""
    was_training = model.training
    model.eval()
    try:
        with frozen_projections(model):
            yield
    finally:
        model.train(was_training)


def _check_prompt(model: GPT | T5, input_ids: Tensor, attention_mask: Tensor | None, config: GenerationConfig) -> None:
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int, torch.int16, torch.uint8):
        raise ValueError(f"input_ids must be an integer tensor (batch, length), got {tuple(input_ids.shape)} "
                         f"{input_ids.dtype}")
    b, s = input_ids.shape
    if b == 0 or s == 0:
        raise ValueError(f"input_ids of shape {(b, s)} is empty; give each prompt at least one token "
                         "(e.g. the eos id, which separates documents in training)")
    vocab = model.config.vocab_size
    if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab:
        raise ValueError(f"input_ids hold ids outside [0, {vocab}) (the model's vocab_size={vocab})")
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids "
                             f"{tuple(input_ids.shape)}")
        mask = attention_mask.bool()
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("attention_mask has a row with no real token; every prompt needs at least one")
        # A decoder continues from the last column, so every row must end with a real token.
        if isinstance(model, GPT) and not bool(mask[:, -1].all()):
            raise ValueError("decoder prompts must be left-padded (attention_mask ends with 1 in every row); "
                             "pad on the left, as Hugging Face does with padding_side='left'")
    c = model.config
    if isinstance(model, T5):
        # crop_context is for decoders: an encoder input cut short would change the task itself.
        not_t5 = " (crop_context applies to decoder-only models, not T5)" if config.crop_context else ""
        c.check_sequence_length(s, f"prompt length{not_t5}")
        c.check_sequence_length(config.max_new_tokens, f"max_new_tokens{not_t5}")
    elif not config.crop_context:  # with it, the window slides over whatever does not fit
        n = config.max_new_tokens
        c.check_sequence_length(s + n, f"prompt length {s} + max_new_tokens={n} =")


def _unwrap(model: nn.Module) -> nn.Module:
    """Accept a zoo task (LightningModule) as well as its model."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, (GPT, T5, BERT)) else model


def generate(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    max_new_tokens: int = 20,
    min_new_tokens: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = False,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | None = None,
    use_cache: bool = True,
    crop_context: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Generate from a ``GPT`` (decoder) or ``T5`` (encoder-decoder) model, as Hugging Face's
    ``model.generate`` does. Options are the fields of ``GenerationConfig`` (see there), so
    ``generate(model, ids, **dataclasses.asdict(config))`` works too.

    Args:
        model: A ``zoo.models.GPT`` or ``T5`` (or the zoo task holding one). It runs in eval mode;
            its mode is restored afterwards.
        input_ids: Prompts ``(b, s)``. Decoder prompts of different lengths are left-padded;
            encoder inputs may be padded either side.
        attention_mask: ``(b, s)``, 1/True at real tokens; None = no padding.
        generator: Random source for sampling (``seed`` makes a fresh one).

    Returns:
        Token ids: for a decoder ``(b, s + n)``, the prompt then the new tokens; for an
        encoder-decoder ``(b, 1 + n)``, the decoder start token then the new tokens. ``n`` is at
        most ``max_new_tokens``; rows that ended early are padded with ``pad_token_id``.

    Raises:
        ValueError: An option out of range, a BERT model (use ``fill_mask``), or a prompt that
            does not fit a learned position table (unless ``crop_context``); the message names
            the value.
    """
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, do_sample=do_sample,
        temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams, length_penalty=length_penalty,
        early_stopping=early_stopping, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        decoder_start_token_id=decoder_start_token_id, use_cache=use_cache, crop_context=crop_context,
        seed=seed,
    )
    model = _unwrap(model)
    if isinstance(model, BERT):
        raise ValueError("generate() needs a decoder (GPT) or encoder-decoder (T5); BERT is an encoder: "
                         "predict masked tokens with zoo.generation.fill_mask (or `zoo generate` with [MASK])")
    if not isinstance(model, (GPT, T5)):
        raise ValueError(f"generate() needs a zoo.models.GPT or T5, got {type(model).__name__}")
    if generator is not None and seed is not None:
        raise ValueError("pass either seed or generator, not both")
    device = model.embed_tokens.weight.device
    input_ids = input_ids.to(device)
    attention_mask = attention_mask.to(device) if attention_mask is not None else None
    _check_prompt(model, input_ids, attention_mask, config)
    eos = config.eos_token_id if config.eos_token_id is not None else model.config.eos_token_id
    pad = config.pad_token_id if config.pad_token_id is not None else model.config.pad_token_id
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    # Inference mode trims per-op bookkeeping, a tenth of a one-token step; the result is cloned
    # out of it, since inference tensors cannot be saved for backward (e.g. to train on samples).
    with torch.inference_mode(), _eval_mode(model), frozen_output_head(model):
        room = config.max_new_tokens
        if isinstance(model, T5):
            start_id = config.decoder_start_token_id if config.decoder_start_token_id is not None else pad
            state: _State = _Seq2SeqState(model, input_ids, attention_mask, config.use_cache, room, start_id)
            prefix = torch.full((input_ids.shape[0], 1), start_id, dtype=torch.long, device=device)
        else:
            learned = model.config.position == "learned"
            window = model.config.max_seq_len if config.crop_context and learned else None
            state = _CausalState(model, input_ids, attention_mask, config.use_cache, room, window)
            prefix = input_ids.long()
        if config.num_beams > 1:
            new_tokens = _beam_search(state, config, eos, pad)
        else:
            new_tokens = _greedy_or_sample(state, config, eos, pad, generator)
        sequences = torch.cat((prefix, new_tokens), dim=1)
    return sequences.clone()


# ---------------------------------------------------------------------------------------------
# Fill-mask (BERT)


@dataclass
class MaskPredictions:
    """Top candidates at each masked position.

    Attributes:
        positions: ``(m, 2)`` (row, column) of each mask in ``input_ids``, row-major order.
        token_ids: ``(m, top_k)`` candidate ids, most likely first.
        probs: ``(m, top_k)`` their probabilities.
    """

    positions: Tensor
    token_ids: Tensor
    probs: Tensor


@torch.no_grad()
def fill_mask(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    mask_token_id: int,
    top_k: int = 5,
) -> MaskPredictions:
    """Predict the tokens behind ``mask_token_id`` with a ``BERT`` masked LM (Hugging Face's
    fill-mask pipeline).

    Raises:
        ValueError: Not a BERT model, ``top_k < 1``, or no mask token in ``input_ids``.
    """
    model = _unwrap(model)
    if not isinstance(model, BERT):
        raise ValueError(f"fill_mask() needs a zoo.models.BERT masked LM, got {type(model).__name__}; "
                         "use zoo.generation.generate for GPT and T5")
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1")
    device = model.embed_tokens.weight.device
    input_ids = input_ids.to(device)
    positions = (input_ids == mask_token_id).nonzero()  # (m, 2)
    if positions.shape[0] == 0:
        raise ValueError(f"input_ids contain no mask token (id {mask_token_id}); put [MASK] where a word should go")
    with _eval_mode(model):
        hidden = model.encode(input_ids, attention_mask.to(device) if attention_mask is not None else None)
        logits = model.mlm_head(hidden[positions[:, 0], positions[:, 1]])  # (m, v)
    probs, token_ids = logits.float().softmax(dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)
    return MaskPredictions(positions=positions, token_ids=token_ids, probs=probs)


__all__ = ["GenerationConfig", "MaskPredictions", "fill_mask", "generate", "top_k_filter", "top_p_filter"]
