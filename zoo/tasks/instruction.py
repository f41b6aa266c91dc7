"""Instruction (prompt -> response) fine-tuning — any seq2seq task under ``zoo fit``:
``InstructionLM`` for decoders (GPT, LLaMA), ``InstructionSeq2Seq`` for T5 and ``InstructionMLM`` for
BERT (which fills one ``[MASK]`` per prompt token, so only for responses as long as their prompts).
Data: ``zoo.data.InstructionDataModule``; the layouts are ``zoo.tasks.formats``'.

The objective is the pretraining one restricted to the response: next-token prediction where the
labels are -100 on the prompt (decoders), the decoder's prediction of the target (T5), the masked
positions (BERT). Validation and test log the pretraining metrics over response tokens (perplexity,
token accuracy, bits per byte) and score greedy answers to each prompt: ``exact_match`` and
character error rate ``cer`` (``score_answers``). ``zoo generate`` answers new prompts in the trained
format, which the data module records in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.text import CharErrorRate

from zoo.data.tokenizers import Tokenizer
from zoo.models import BertConfig, GPTConfig, T5Config
from zoo.models.registry import FAMILIES
from zoo.tasks.base import Stage
from zoo.tasks.finetune import FineTuneTask
from zoo.tasks.formats import format_of
from zoo.tasks.metrics import ExactMatch
from zoo.tasks.objectives import MaskedLM


class InstructionTask(FineTuneTask):
    """What the instruction tasks share: scored greedy answers (not used directly).

    Args:
        score_answers: In validation and test, answer each prompt greedily (one ``generate`` call per
            batch, up to 4 tokens past its longest reference) and log exact match and character
            error rate against the references.
        **kwargs: As in ``zoo.tasks.finetune.FineTuneTask``.
    """

    def __init__(self, config: Any, score_answers: bool = True, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.score_answers = score_answers
        self._layout, self._tokenizer = None, None

    def text_metrics(self, tokenizer: Tokenizer) -> dict[str, Metric]:
        self._layout, self._tokenizer = format_of(self.family.shape)(tokenizer), tokenizer
        answers = {"exact_match": ExactMatch(), "cer": CharErrorRate()} if self.score_answers else {}
        return {**super().text_metrics(tokenizer), **answers}

    def _shared_step(self, batch: Mapping[str, Tensor], stage: Stage) -> Tensor:
        loss = super()._shared_step(batch, stage)  # logs every metric of the stage, these included
        metrics = getattr(self, f"{stage}_metrics")
        if stage != "train" and "exact_match" in metrics:
            with torch.no_grad():
                answers = self._layout.answer(self.model, batch)
            predictions = [self._tokenizer.decode(ids) for ids in answers]
            references = [self._tokenizer.decode(ids) for ids in self._layout.references(batch)]
            metrics["exact_match"].update(predictions, references)
            metrics["cer"].update(predictions, references)
        return loss


class InstructionLM(InstructionTask):
    """A decoder fine-tuned on ``prompt [SEP] response </s>`` with the loss on the response.
    Arguments as in ``InstructionTask``."""

    family = FAMILIES["gpt"]

    def __init__(self, config: GPTConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        # Right padding needs no mask under causal attention, so the fused causal kernel applies.
        logits = self.model(batch["input_ids"])  # (b, t, v)
        return logits[:, :-1], batch["labels"][:, 1:]  # position i predicts token i + 1


class InstructionSeq2Seq(InstructionTask):
    """An encoder-decoder fine-tuned on prompt -> response: the encoder reads the prompt, the decoder
    writes the response. Arguments as in ``InstructionTask``."""

    family = FAMILIES["t5"]

    def __init__(self, config: T5Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self.model(batch["input_ids"], batch["decoder_input_ids"], attention_mask=batch["attention_mask"])
        return logits, batch["labels"]


class InstructionMLM(InstructionTask):
    """An encoder fine-tuned to fill ``prompt [SEP] [MASK]…`` with the response, one token per
    ``[MASK]`` in one pass (the masked-LM objective on those positions). Arguments as in
    ``InstructionTask``."""

    family = FAMILIES["bert"]

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

    logits_and_labels = MaskedLM.logits_and_labels  # the MLM head on the scored positions only


#: The instruction task of each base family (``zoo.models.registry.family_of(...).name``).
INSTRUCTION_TASKS: dict[str, type[InstructionTask]] = {"gpt": InstructionLM, "t5": InstructionSeq2Seq,
                                                       "bert": InstructionMLM}
