"""Scoring token sequences with a zoo model, one rule per family shape; importable without lm-eval.

A request is ``(context, continuation)`` as token ids; the answer is ``(log p(continuation |
context), is_greedy)``, the sum over the continuation's tokens and whether each is the model's most
likely token there:

- **decoder** (GPT, LLaMA): one causal forward over ``context + continuation`` (without its last
  token), reading the continuation's log-probabilities, as lm-eval's ``hf`` backend does: the input
  keeps at most ``max_seq_len`` tokens, cut from the left.
- **encoder-decoder** (T5): the encoder reads the context (at most ``max_seq_len`` tokens, cut from
  the left); the decoder scores the continuation from the start token (pad), as T5 scores labels.
- **encoder** (BERT): the pseudo-log-likelihood of Salazar et al. (2020, "Masked Language Model
  Scoring"): the sequence ``[CLS] context continuation [SEP]`` is copied once per continuation
  token, that token replaced by ``[MASK]``, and the model's log-probability of the token at its
  masked position is summed. The context is read in full (both sides of each masked token are
  visible, the context's and the rest of the continuation's), so a masked LM answers the same
  multiple-choice and cloze requests as the other families; ``is_greedy`` asks whether every
  masked token is the top prediction at its position. The numbers are pseudo-log-likelihoods, not
  probabilities of the continuation: compare them between choices, not with a decoder's.

Requests run in batches of similar length (longest first, so a memory error comes at once) with a
progress bar; results come back in request order. ``generate`` completes prompts for the decoder and
encoder-decoder families through ``zoo.generation`` (KV cache); a masked LM writes no continuation.

Shapes: b batch, t sequence length, v vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.data.tokenizers import Tokenizer
from zoo.generation import generate
from zoo.models.base import ZooModel
from zoo.models.registry import family_of

Request = tuple[Sequence[int], Sequence[int]]
Score = tuple[float, bool]


def _length_order(lengths: Sequence[int]) -> list[int]:
    """Indices longest first (ties in request order): batches then hold similar lengths."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _progress(total: int, desc: str, disable: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=disable)


@dataclass
class Scorer:
    """Scores and completes token sequences with one zoo model.

    Args:
        model: A zoo ``GPT``, ``T5`` or ``BERT`` (adapters merged); put in eval mode on ``device``.
        tokenizer: The tokenizer it was trained with (its special ids).
        device: Where the batches go (``cpu``, ``cuda``, ``cuda:1``, ...).
        batch_size: Sequences per forward (for a masked LM, masked copies per forward).
    """

    model: ZooModel
    tokenizer: Tokenizer
    device: torch.device | str = "cpu"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()
        self.shape = family_of(self.model).shape

    @property
    def max_length(self) -> int:
        """Tokens one forward reads at most: the model's ``max_seq_len``."""
        return self.model.config.max_seq_len

    # -----------------------------------------------------------------------------------------
    # Log-likelihoods

    @torch.inference_mode()
    def loglikelihood(self, requests: Sequence[Request], *, disable_progress: bool = False) -> list[Score]:
        """``(sum of log-probabilities, all greedy)`` of each continuation after its context."""
        for context, continuation in requests:
            if not continuation:
                raise ValueError("an empty continuation has nothing to score")
            if len(continuation) > self.max_length:
                raise ValueError(f"a continuation of {len(continuation)} tokens does not fit max_seq_len="
                                 f"{self.max_length}")
            if self.shape != "encoder" and not context:
                raise ValueError("a decoder or encoder-decoder scores a continuation after at least one context "
                                 "token (lm-eval gives the prefix token for an empty context)")
        if self.shape == "encoder":
            return self._pseudo(list(requests), disable_progress)
        score: Callable[[list[Request]], list[Score]] = self._causal if self.shape == "decoder" else self._seq2seq
        results: list[Score | None] = [None] * len(requests)
        order = _length_order([len(c) + len(x) for c, x in requests])
        with _progress(len(requests), "loglikelihood", disable_progress) as bar:
            for batch in _batches(order, self.batch_size):
                for i, answer in zip(batch, score([requests[i] for i in batch]), strict=True):
                    results[i] = answer
                bar.update(len(batch))
        return results  # type: ignore[return-value]

    def _causal(self, batch: list[Request]) -> list[Score]:
        rows, spans = [], []
        for context, continuation in batch:
            row = (list(context) + list(continuation))[-(self.max_length + 1) :][:-1]
            rows.append(row)
            spans.append((len(row) - len(continuation), len(continuation)))
        ids = self._right_pad(rows)
        logits = self.model(ids)  # (b, t, v); right padding never reaches earlier positions
        return [self._read(logits[i, start : start + n], continuation)
                for i, ((start, n), (_, continuation)) in enumerate(zip(spans, batch, strict=True))]

    def _seq2seq(self, batch: list[Request]) -> list[Score]:
        sources = [list(context)[-self.max_length :] for context, _ in batch]
        targets = [list(continuation)[-self.max_length :] for _, continuation in batch]
        ids = self._right_pad(sources)
        mask = self._right_pad([[1] * len(s) for s in sources], value=0).bool()
        start = self.model.config.pad_token_id  # T5's decoder start token
        decoder_ids = self._right_pad([[start, *t[:-1]] for t in targets])
        logits = self.model.decode(decoder_ids, self.model.encode(ids, mask), mask)  # (b, t, v)
        return [self._read(logits[i, : len(t)], t) for i, t in enumerate(targets)]

    def _pseudo(self, requests: list[Request], disable_progress: bool) -> list[Score]:
        """Pseudo-log-likelihoods: one masked copy per continuation token, batched across requests."""
        tok = self.tokenizer
        room = self.max_length - 2  # [CLS] and [SEP]
        copies = []  # (request, row, masked position, true token)
        rows = []
        for r, (context, continuation) in enumerate(requests):
            continuation = list(continuation)
            if len(continuation) > room:
                raise ValueError(f"a continuation of {len(continuation)} tokens does not fit a masked LM of "
                                 f"max_seq_len={self.max_length} ([CLS] and [SEP] included)")
            context = list(context)[len(context) - (room - len(continuation)) :] if \
                len(context) + len(continuation) > room else list(context)
            rows.append([tok.cls_id, *context, *continuation, tok.sep_id])
            first = 1 + len(context)
            copies += [(r, first + j, token) for j, token in enumerate(continuation)]
        sums = [0.0] * len(requests)
        greedy = [True] * len(requests)
        order = _length_order([len(rows[r]) for r, _, _ in copies])
        with _progress(len(copies), "pseudo-loglikelihood (masked copies)", disable_progress) as bar:
            for batch in _batches(order, self.batch_size):
                masked = []
                for k in batch:
                    r, position, _ = copies[k]
                    row = list(rows[r])
                    row[position] = tok.mask_id
                    masked.append(row)
                ids = self._right_pad(masked)
                mask = self._right_pad([[1] * len(row) for row in masked], value=0).bool()
                hidden = self.model.encode(ids, mask)  # (b, t, e)
                positions = torch.tensor([copies[k][1] for k in batch], device=self.device)
                picked = hidden[torch.arange(len(batch), device=self.device), positions]  # (b, e)
                log_probs = F.log_softmax(self.model.mlm_head(picked).float(), dim=-1)  # (b, v)
                targets = torch.tensor([copies[k][2] for k in batch], device=self.device)
                values = log_probs.gather(1, targets[:, None]).squeeze(1).tolist()
                tops = (log_probs.argmax(dim=-1) == targets).tolist()
                for k, value, top in zip(batch, values, tops, strict=True):
                    r = copies[k][0]
                    sums[r] += value
                    greedy[r] = greedy[r] and top
                bar.update(len(batch))
        return list(zip(sums, greedy, strict=True))

    def _read(self, logits: Tensor, continuation: Sequence[int]) -> Score:
        """``(sum log p, all greedy)`` of ``continuation`` from its ``(n, v)`` next-token logits."""
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (n, v)
        target = torch.tensor(list(continuation), device=log_probs.device)
        value = float(log_probs.gather(1, target[:, None]).sum())
        return value, bool((log_probs.argmax(dim=-1) == target).all())

    def _right_pad(self, rows: list[list[int]], value: int | None = None) -> Tensor:
        fill = self.tokenizer.pad_id if value is None else value
        width = max(len(row) for row in rows)
        out = torch.full((len(rows), width), fill, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out.to(self.device)

    # -----------------------------------------------------------------------------------------
    # Generation

    def generate(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, disable_progress: bool = False,
        **options: Any,
    ) -> list[list[int]]:
        """New tokens after each prompt (until eos, which is dropped, or ``max_new_tokens``).

        Decoder prompts keep their last ``max_seq_len - max_new_tokens`` tokens; encoder inputs their
        last ``max_seq_len``. ``options`` go to ``zoo.generation.generate`` (``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``seed``); the default is greedy.

        Raises:
            ValueError: The model is a masked LM (it writes no continuation), or ``max_new_tokens``
                leaves a decoder no room for a prompt.
        """
        if self.shape == "encoder":
            raise ValueError(f"a masked LM ({type(self.model).__name__}) writes no continuation: it predicts tokens "
                             "behind [MASK] only; choose multiple-choice or loglikelihood tasks")
        tok = self.tokenizer
        if self.shape == "decoder":
            room = self.max_length - max_new_tokens
            if room < 1:
                raise ValueError(f"max_gen_toks={max_new_tokens} leaves no room for a prompt in "
                                 f"max_seq_len={self.max_length}")
            rows = [list(p)[-room:] or [tok.eos_id] for p in prompts]
        else:
            rows = [list(p)[-self.max_length :] or [tok.eos_id] for p in prompts]
            max_new_tokens = min(max_new_tokens, self.max_length)
        results: list[list[int] | None] = [None] * len(rows)
        order = _length_order([len(row) for row in rows])
        with _progress(len(rows), "generate", disable_progress) as bar:
            for batch in _batches(order, self.batch_size):
                ids, mask = _left_pad([rows[i] for i in batch], tok.pad_id)
                out = generate(self.model, ids.to(self.device), mask.to(self.device), max_new_tokens=max_new_tokens,
                               eos_token_id=tok.eos_id, pad_token_id=tok.pad_id, **options)
                new = out[:, ids.shape[1]:] if self.shape == "decoder" else out[:, 1:]
                for i, row in zip(batch, new.tolist(), strict=True):
                    results[i] = row[: row.index(tok.eos_id)] if tok.eos_id in row else row
                bar.update(len(batch))
        return results  # type: ignore[return-value]


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


__all__ = ["Request", "Score", "Scorer"]
