"""How good and how varied a model's text is: log-likelihood under the model, bits per byte, and the
diversity of generations (distinct-n, repetition).

Shapes: b batch, t sequence len, v vocab.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.tasks.formats import format_of


def _positions(attention_mask: Tensor) -> Tensor:
    # Positions count real tokens only, as generation numbers them for left-padded prompts.
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


@torch.no_grad()
def token_log_probs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    decoder_input_ids: Tensor | None = None,
) -> Tensor:
    """Log-probability of each token given the ones before it, ``(b, t - 1)``: entry ``i`` scores
    token ``i + 1``.

    A decoder (``GPT``) scores ``input_ids`` itself; left padding is fine when ``attention_mask``
    marks it. An encoder-decoder (``T5``) scores ``decoder_input_ids`` (starting with the decoder
    start token, as ``generate`` returns them) given the encoder input ``input_ids``.
    """
    layout = format_of(model)
    if not layout.generates:
        raise ValueError("a BERT encoder assigns no left-to-right likelihood; use a GPT or T5 model")
    if layout.separate_target:
        if decoder_input_ids is None:
            raise ValueError("a T5 model scores decoder_input_ids given input_ids; pass decoder_input_ids")
        targets = decoder_input_ids
        logits = model(input_ids, decoder_input_ids, attention_mask=attention_mask)  # (b, t, v)
    else:
        targets = input_ids
        position_ids = _positions(attention_mask) if attention_mask is not None else None
        logits = model(input_ids, attention_mask, position_ids=position_ids)  # (b, t, v)
    log_probs = logits[:, :-1].float().log_softmax(dim=-1)
    return log_probs.gather(-1, targets[:, 1:, None]).squeeze(-1)  # (b, t - 1)


@dataclass(frozen=True)
class SequenceScores:
    """Log-likelihood of the scored part of each sequence.

    Attributes:
        log_likelihood: ``(b,)`` sum of log p over the scored tokens (nats).
        num_tokens: ``(b,)`` how many tokens were scored.
    """

    log_likelihood: Tensor
    num_tokens: Tensor

    @property
    def mean_log_prob(self) -> Tensor:
        """``(b,)`` log-likelihood per scored token; its negative is the per-token loss."""
        return self.log_likelihood / self.num_tokens.clamp(min=1)


def sequence_log_likelihood(
    model: nn.Module,
    sequences: Tensor,
    *,
    prompt_length: int = 0,
    attention_mask: Tensor | None = None,
    pad_token_id: int | None = None,
    encoder_input_ids: Tensor | None = None,
    encoder_attention_mask: Tensor | None = None,
) -> SequenceScores:
    """Score what a model generated: log p of the tokens after ``prompt_length`` under ``model``.

    ``sequences`` is what ``zoo.generation.generate`` returns: for a decoder the prompt then the new
    tokens; for an encoder-decoder the decoder tokens (pass the source as ``encoder_input_ids``).
    Tokens equal to ``pad_token_id`` (rows that stopped early are padded with it) are not scored.
    ``attention_mask`` marks left padding of the prompt.
    """
    if format_of(model).separate_target:
        if encoder_input_ids is None:
            raise ValueError("a T5 model needs the source as encoder_input_ids")
        log_probs = token_log_probs(model, encoder_input_ids, encoder_attention_mask, decoder_input_ids=sequences)
        prompt_length = max(prompt_length, 1)  # the decoder start token is given, not generated
    else:
        if attention_mask is None and pad_token_id is not None:
            attention_mask = sequences != pad_token_id
        log_probs = token_log_probs(model, sequences, attention_mask)
    targets = sequences[:, 1:]  # (b, t - 1), aligned with log_probs
    scored = (torch.arange(1, sequences.shape[1], device=sequences.device) >= prompt_length).expand_as(targets)
    if pad_token_id is not None:
        scored = scored & (targets != pad_token_id)
    return SequenceScores((log_probs * scored).sum(dim=-1), scored.sum(dim=-1))


@dataclass(frozen=True)
class LanguageModelScore:
    """Loss of a language model on held-out text.

    Attributes:
        loss: Mean cross-entropy per scored token (nats).
        bits_per_byte: Total nats / (ln 2 · UTF-8 bytes of the scored tokens): comparable across tokenizers.
        num_tokens: Tokens scored.
        num_bytes: UTF-8 bytes those tokens stand for.
    """

    loss: float
    bits_per_byte: float
    num_tokens: int
    num_bytes: int


def score_language_model(
    model: nn.Module, batches: Iterable[Mapping[str, Tensor]], token_bytes: Sequence[int]
) -> LanguageModelScore:
    """Next-token loss and bits per byte of a decoder over ``batches`` of ``input_ids`` (``clm`` batches
    of ``TextDataModule``); ``token_bytes`` from ``Tokenizer.token_byte_lengths()``."""
    lengths = torch.as_tensor(token_bytes, dtype=torch.long)
    nats, tokens, num_bytes = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            ids = batch["input_ids"]
            log_probs = token_log_probs(model, ids, batch.get("attention_mask"))
            scored = ids[:, 1:]
            nats -= float(log_probs.double().sum())
            tokens += scored.numel()
            num_bytes += int(lengths[scored].sum())
    finally:
        model.train(was_training)
    if tokens == 0:
        raise ValueError("no batches to score")
    return LanguageModelScore(nats / tokens, bits_per_byte(nats, num_bytes), tokens, num_bytes)


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """Total cross-entropy in nats over text of ``num_bytes`` UTF-8 bytes, as bits per byte."""
    if num_bytes <= 0:
        raise ValueError(f"num_bytes={num_bytes} must be positive")
    return total_nats / (math.log(2) * num_bytes)


def _ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _as_lists(sequences: Iterable[Sequence[int]] | Tensor) -> list[list[int]]:
    if isinstance(sequences, Tensor):
        return sequences.tolist()
    return [list(s) for s in sequences]


def distinct_n(sequences: Iterable[Sequence[int]] | Tensor, n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams over all n-grams of all ``sequences`` together.

    1.0 means no n-gram occurs twice anywhere; values near 0 mean the same phrases over and over.
    0.0 when no sequence is ``n`` tokens long.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    grams = [g for seq in _as_lists(sequences) for g in _ngrams(seq, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(sequences: Iterable[Sequence[int]] | Tensor, n: int = 4) -> float:
    """Mean over sequences of seq-rep-n (Welleck et al., 2019): the fraction of a sequence's n-grams
    that repeat an n-gram earlier in the same sequence, ``1 - distinct / total``.

    0.0 = no loop; near 1.0 = the text is one phrase repeated. Sequences shorter than ``n`` count as 0.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    rates = []
    for seq in _as_lists(sequences):
        grams = _ngrams(seq, n)
        rates.append(1.0 - len(set(grams)) / len(grams) if grams else 0.0)
    if not rates:
        raise ValueError("no sequences")
    return sum(rates) / len(rates)
