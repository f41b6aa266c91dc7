"""The zoo as an lm-evaluation-harness model: ``lm_eval --model zoo --model_args checkpoint=PATH``.

``ZooLM`` (registered as ``zoo``) answers lm-eval's three request types for every family, through
``zoo.eval.scoring.Scorer``:

- ``loglikelihood(context, continuation)``: text is tokenized as lm-eval's ``hf`` backend tokenizes
  it for the same model exported with ``zoo convert`` (``_encode_pair``: trailing spaces of the
  context move to the continuation; a decoder encodes the whole and splits, an encoder-decoder
  encodes each part, its input ending with ``</s>``), so the two backends score the same tokens. An
  empty context is the document separator ``</s>`` for a decoder, the input ``</s>`` for T5. A
  **masked LM** scores the continuation by pseudo-log-likelihood (``zoo.eval.scoring``): the context
  is the text before it, read together with it as ``[CLS] context continuation [SEP]``, each
  continuation token masked in turn; an empty context is just ``[CLS]``.
- ``loglikelihood_rolling(text)``: lm-eval's rolling windows of ``max_seq_len`` tokens, each token
  predicted once after as much context as fits (a masked LM: pseudo-log-likelihood per window).
- ``generate_until(context, gen_kwargs)``: greedy (or sampled, when the task asks) decoding through
  ``zoo.generation`` with its KV cache, cut at the task's stop strings. A masked LM writes no
  continuation, and says so in one line.

Model arguments: ``checkpoint`` (a ``.ckpt`` or a ``zoo convert`` directory, through ``zoo.load``),
``tokenizer`` (a tokenizer file instead of the recorded one), ``device`` (``cpu``, ``cuda``, ...),
``batch_size``, ``max_gen_toks`` (default 256), ``dtype`` (``float32``, ``bfloat16``, ``float16``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from zoo.data.tokenizers import EOS, Tokenizer
from zoo.eval.scoring import Scorer
from zoo.models.base import ZooModel

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Sequences per forward unless ``batch_size`` says otherwise (lm-eval's ``auto`` means this too).
DEFAULT_BATCH_SIZE = 32


def parse_batch_size(value: Any) -> int:
    """lm-eval's ``--batch_size`` (an int, a numeric string, ``auto`` or ``auto:N``) as a number."""
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"batch_size={value!r} must be a positive integer (or auto)") from None
    if size < 1:
        raise ValueError(f"batch_size={value!r} must be a positive integer (or auto)")
    return size


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@register_model("zoo")
class ZooLM(TemplateLM):
    """A zoo model behind lm-eval's ``LM`` interface (see the module docstring).

    Args:
        checkpoint: A zoo checkpoint or a ``zoo convert`` directory.
        tokenizer: A zoo tokenizer file to use instead of the recorded one.
        device: Where the model runs; default ``cuda`` when available, else ``cpu``.
        batch_size: Sequences per forward (masked LM: masked copies per forward).
        max_gen_toks: New tokens ``generate_until`` writes at most unless the task says.
        dtype: ``float32`` (default), ``bfloat16`` or ``float16``.
        model, zoo_tokenizer: An already loaded model and its tokenizer instead of ``checkpoint``
            (``ZooLM.from_model``; the in-training callback uses it).
        what: How messages about the checkpoint name the caller.
        progress: Show progress bars.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        tokenizer: str | None = None,
        device: str | None = None,
        batch_size: int | str | None = None,
        max_gen_toks: int = 256,
        dtype: str = "float32",
        *,
        model: ZooModel | None = None,
        zoo_tokenizer: Tokenizer | None = None,
        max_batch_size: Any = None,  # lm-eval passes it to every model; batches here have one fixed size
        what: str = "zoo model:",
        progress: bool = True,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ValueError(f"zoo model: unknown model_args {sorted(unknown)}; it takes checkpoint, tokenizer, "
                             "device, batch_size, max_gen_toks, dtype")
        if dtype not in DTYPES:
            raise ValueError(f"zoo model: dtype={dtype!r} must be one of {sorted(DTYPES)}")
        if model is None:
            if checkpoint is None:
                raise ValueError("zoo model: pass checkpoint=PATH (a zoo .ckpt or a `zoo convert` directory) in "
                                 "--model_args")
            from zoo.loading import load

            model, zoo_tokenizer = load(str(checkpoint), tokenizer=tokenizer, what=what)
        elif zoo_tokenizer is None:
            raise ValueError("zoo model: a model given directly needs its zoo_tokenizer")
        self.checkpoint = checkpoint
        self.max_gen_toks = int(max_gen_toks)
        self._device = torch.device(device or default_device())
        if self._device.type == "cuda" and not torch.cuda.is_available():
            # lm-eval's command line asks for cuda:0 unless told otherwise; its hf backend falls back too.
            log.warning("zoo model: device %s is not available here; running on the CPU", device)
            self._device = torch.device("cpu")
        model = model.to(dtype=DTYPES[dtype])
        self.scorer = Scorer(model, zoo_tokenizer, self._device, parse_batch_size(batch_size))
        self.zoo_tokenizer = zoo_tokenizer
        self.progress = progress
        self.shape = self.scorer.shape
        self.backend = "seq2seq" if self.shape == "encoder-decoder" else "causal"

    @classmethod
    def from_model(cls, model: ZooModel, tokenizer: Tokenizer, **kwargs: Any) -> ZooLM:
        """A ``ZooLM`` around a model already in memory (its device and dtype are kept)."""
        device = kwargs.pop("device", None) or next(model.parameters()).device
        dtype = {v: k for k, v in DTYPES.items()}.get(next(model.parameters()).dtype, "float32")
        return cls(model=model, zoo_tokenizer=tokenizer, device=str(device), dtype=dtype, **kwargs)

    # -----------------------------------------------------------------------------------------
    # What lm-eval asks of a TemplateLM

    @property
    def model(self) -> ZooModel:
        return self.scorer.model

    @property
    def eot_token_id(self) -> int:
        return self.zoo_tokenizer.eos_id

    @property
    def prefix_token_id(self) -> int:
        # Decoders train on documents each followed by </s>: it is what precedes a document.
        return self.zoo_tokenizer.eos_id

    @property
    def max_length(self) -> int:
        return self.scorer.max_length

    @property
    def batch_size(self) -> int:
        return self.scorer.batch_size

    @property
    def tokenizer_name(self) -> str:
        return f"zoo-{self.zoo_tokenizer.fingerprint}"

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """Token ids of ``string``; an encoder-decoder's input ends with ``</s>`` (as the exported
        tokenizer's ``add_special_tokens``) unless ``add_special_tokens`` is False."""
        ids = self.zoo_tokenizer.encode(string)
        if self.shape == "encoder-decoder" and add_special_tokens is not False:
            ids.append(self.zoo_tokenizer.eos_id)
        return ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.zoo_tokenizer.decode(ids)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if self.shape != "encoder":
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        pairs = []
        for context, continuation in (request.args for request in requests):
            if context == "":  # the masked LM's sequence starts with [CLS] anyway
                pairs.append(((context, continuation), [], self.tok_encode(continuation)))
            else:
                pairs.append(((context, continuation), *self._encode_pair(context, continuation)))
        return self._loglikelihood_tokens(pairs, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, requests: list[Any], disable_tqdm: bool = False, **kwargs: Any) -> list[Any]:
        scores = self.scorer.loglikelihood([(context, continuation) for _, context, continuation in requests],
                                           disable_progress=disable_tqdm or not self.progress)
        for (key, _, _), score in zip(requests, scores, strict=True):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, score)
        return scores

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        windows, owners = [], []
        # A masked LM's window is [CLS] context continuation [SEP]: two places fewer, and one more
        # because the first window's context (the prefix) becomes [CLS].
        length = self.max_length - 3 if self.shape == "encoder" else self.max_length
        for index, (text,) in enumerate(request.args for request in requests):
            for context, continuation in map(make_disjoint_window, get_rolling_token_windows(
                    token_list=self.tok_encode(text), prefix_token=self.prefix_token_id, max_seq_len=length,
                    context_len=1)):
                if self.shape == "encoder" and context == [self.prefix_token_id]:
                    context = []
                windows.append((None, context, continuation))
                owners.append(index)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for index, (value, _) in zip(owners, scores, strict=True):
            totals[index] += value
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if self.shape == "encoder":
            task = next((r.task_name for r in requests if getattr(r, "task_name", None)), "this task")
            raise ValueError(f"{task} asks for generated text (generate_until), which a masked LM "
                             f"({type(self.model).__name__}) cannot write; choose multiple-choice or loglikelihood "
                             "tasks")
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):  # one generation setting per batch
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        for indices in groups.values():
            kwargs = dict(normalize_gen_kwargs(requests[indices[0]].args[1], self.max_gen_toks))
            until = handle_stop_sequences(kwargs.pop("until", None), eos=EOS)
            options = {"max_new_tokens": int(kwargs.pop("max_gen_toks"))}
            if kwargs.pop("do_sample", False):
                options |= {"do_sample": True, "temperature": float(kwargs.pop("temperature", 1.0) or 1.0)}
                options |= {k: kwargs.pop(k) for k in ("top_k", "top_p") if kwargs.get(k) is not None}
            prompts = [self.tok_encode(requests[i].args[0]) for i in indices]
            outputs = self.scorer.generate(prompts, disable_progress=disable_tqdm or not self.progress, **options)
            for i, ids in zip(indices, outputs, strict=True):
                text = postprocess_generated_text(self.tok_decode(ids), until, None)
                results[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return results  # type: ignore[return-value]

    def get_model_info(self) -> dict[str, Any]:
        config = self.model.config
        return {"model_class": type(self.model).__name__, "checkpoint": self.checkpoint,
                "model_num_parameters": self.model.num_parameters(), "max_seq_len": config.max_seq_len,
                "tokenizer_fingerprint": self.zoo_tokenizer.fingerprint}
