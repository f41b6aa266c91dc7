"""Instruction (prompt -> response) fine-tuning: ``InstructionLM`` for decoders (GPT, LLaMA) and
``InstructionSeq2Seq`` for T5. Data: ``zoo.data.InstructionDataModule``.

The objective is the pretraining one restricted to the response: next-token prediction where the
labels are -100 on the prompt (decoders), or the decoder's prediction of the target (T5). Metrics
are those of pretraining over response tokens only: perplexity and token accuracy
(``val_accuracy``). ``zoo generate`` answers new prompts in the trained format, which the data module
records in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from zoo.models import GPTConfig, T5Config
from zoo.models.registry import FAMILIES
from zoo.tasks.finetune import FineTuneTask


class InstructionLM(FineTuneTask):
    """A decoder fine-tuned on ``prompt [SEP] response </s>`` with the loss on the response.
    Arguments as in ``zoo.tasks.finetune.FineTuneTask``."""

    family = FAMILIES["gpt"]

    def __init__(self, config: GPTConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        # Right padding needs no mask under causal attention, so the fused causal kernel applies.
        logits = self.model(batch["input_ids"])  # (b, t, v)
        return logits[:, :-1], batch["labels"][:, 1:]  # position i predicts token i + 1


class InstructionSeq2Seq(FineTuneTask):
    """An encoder-decoder fine-tuned on prompt -> response: the encoder reads the prompt, the decoder
    writes the response. Arguments as in ``zoo.tasks.finetune.FineTuneTask``."""

    family = FAMILIES["t5"]

    def __init__(self, config: T5Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self.model(batch["input_ids"], batch["decoder_input_ids"], attention_mask=batch["attention_mask"])
        return logits, batch["labels"]


#: The instruction task of each base family that can generate (``zoo.models.registry.family_of(...).name``).
INSTRUCTION_TASKS: dict[str, type[FineTuneTask]] = {"gpt": InstructionLM, "t5": InstructionSeq2Seq}
