"""``InstructionDataModule``: prompt -> response pairs for instruction (or any seq2seq) fine-tuning
of decoders (GPT, LLaMA) and encoder-decoders (T5).

Pairs come from your JSON Lines / CSV / parquet files (fields ``prompt`` and ``response``,
renamable, e.g. to ``source``/``target``) or from a built-in task: two questions about passages
of the Python documentation, answered in words (``zoo.data.classification.python_docs_instructions``),
or a synthetic one — ``copy``, ``reverse``, ``sort``, ``addition`` (``zoo.data.synthetic``, sized by
``synthetic``; one character per token, and a test split of longer inputs than training).

The trained format, recorded in the checkpoint so that ``zoo generate`` prompts the same way:

- decoder: ``prompt [SEP] response </s>`` in one causal stream; ``labels`` are -100 on the prompt
  and the separator, so the loss (and the accuracy) is on the response and its ``</s>`` only.
- encoder-decoder: the encoder reads ``prompt </s>``; the decoder reads ``<pad> response`` and
  predicts ``response </s>`` (T5's own format).
- encoder: ``prompt [SEP]`` then one ``[MASK]`` per prompt token, the response predicted there (only
  for responses as long as their prompts: copy, reverse, sort).

(``zoo.tasks.formats`` lays these out.)

Batches are padded to their longest example only (right padding: causal attention never looks at
the pads that follow, so decoders need no mask and keep the fused causal kernel). Packing several
pairs into one row would need per-pair attention masks to keep pairs apart; at these lengths
dynamic padding wastes little.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.data.classification import python_docs_instructions
from zoo.data.finetuning import FineTuneDataModule, split_by_hash, truncate
from zoo.data.records import RecordFiles, RecordFormat, load_records, resolve_record_files
from zoo.data.synthetic import SEQ2SEQ_RULES, SyntheticSplits, check_synthetic, seq2seq_splits
from zoo.models.registry import Shape
from zoo.tasks.formats import format_of

Pair = tuple[str, str]


class InstructionDataModule(FineTuneDataModule):
    """Prompt/response pairs for ``zoo.tasks.InstructionLM`` (decoders) and ``InstructionSeq2Seq`` (T5).

    Args:
        data_files: Your files: a path or glob (train), a list, or a dict with ``train`` and optionally
            ``validation`` and ``test``. Null = the built-in task (``builtin``).
        data_format: ``json`` (JSON Lines or a JSON array), ``csv`` or ``parquet``; null = from the extensions.
        prompt_field: Field holding the prompt (the instruction, or a seq2seq source).
        response_field: Field holding the response (or target).
        max_response_len: Longest response in tokens (``</s>`` included); longer ones are cut. The
            prompt gets the rest of ``max_seq_len`` (decoders) or all of it (encoder-decoders).
        builtin: The built-in task used without data_files: ``python_docs`` ("Which part of the
            Python documentation is this from? <passage>" -> "text and data"; "Which module documents
            this? <passage>" -> "json"), or the synthetic ``copy``, ``reverse``, ``sort``, ``addition``
            (with ``tokenizer: char``).
        synthetic: Sizes and lengths of a synthetic built-in task's splits; null = their defaults.
        **kwargs: ``tokenizer``, ``tokenizer_path``, ``vocab_size``, ``max_seq_len``, ``batch_size``,
            ``shape``, ... as in ``zoo.data.finetuning.FineTuneDataModule``.
    """

    def __init__(
        self,
        data_files: RecordFiles | None = None,
        data_format: RecordFormat | None = None,
        prompt_field: str = "prompt",
        response_field: str = "response",
        max_response_len: int = 16,
        builtin: Literal["python_docs", "copy", "reverse", "sort", "addition"] = "python_docs",
        synthetic: SyntheticSplits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        builtins = ("python_docs", *SEQ2SEQ_RULES)
        if builtin not in builtins:
            raise ValueError(f"builtin={builtin!r} is not a built-in task; choose one of {list(builtins)}")
        self.synthetic = check_synthetic(builtin, synthetic, self) if data_files is None else None
        if not 2 <= max_response_len < self.max_seq_len:
            raise ValueError(f"max_response_len={max_response_len} must be in [2, max_seq_len={self.max_seq_len})")
        self.prompt_field, self.response_field = prompt_field, response_field
        self.max_response_len, self.builtin = max_response_len, builtin
        self._files = None
        if data_files is not None:  # every file checked now, before a tokenizer or model is built
            fields = {"prompt_field": prompt_field, "response_field": response_field}
            self._files, self._format = resolve_record_files(data_files, data_format, fields)
        self.save_hyperparameters()
        self.hparams["synthetic"] = dataclasses.asdict(self.synthetic) if self.synthetic else None  # plain values

    def _read_splits(self) -> dict[str, list[Pair]]:
        if self._files is None and self.synthetic is not None:
            return seq2seq_splits(self.builtin, self.seed, self.synthetic.sizes(), self.synthetic.lengths(self.builtin))
        if self._files is None:
            return python_docs_instructions(self.seed)
        rows = load_records(self._files, self._format, {self.prompt_field: "text", self.response_field: "text"},
                            bad_records=self.bad_records, report=rank_zero_warn)
        pairs = {split: [(r[self.prompt_field], r[self.response_field]) for r in items]
                 for split, items in rows.items()}
        if "validation" not in pairs:
            pairs.update(split_by_hash(pairs["train"], lambda pair: pair[0], self.val_fraction, self.seed))
        return pairs

    def _tokenizer_texts(self, train: list[Pair]) -> list[str]:
        return [text for pair in train for text in pair]

    def _encode(self, examples: list[Pair]) -> list[tuple[list[int], list[int]]]:
        prompts = self.tokenizer.encode_batch([p for p, _ in examples])
        responses = self.tokenizer.encode_batch([r for _, r in examples])
        return list(zip(prompts, responses, strict=True))

    def _collator(self, shape: Shape) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        layout = format_of(shape)(self.tokenizer)
        answer_room = self.max_response_len - 1  # the format appends </s>
        for split in self._splits or {}:  # an encoder's layout needs equal lengths: refuse before any step
            layout.check_pairs(self.encoded(split), f"{split} example")

        def collate(batch: list[tuple[int, tuple[list[int], list[int]]]]) -> dict[str, torch.Tensor]:
            pairs = [(prompt, truncate(response, answer_room)) for _, (prompt, response) in batch]
            return {**layout.seq2seq(pairs, self.max_seq_len), "index": torch.tensor([i for i, _ in batch])}

        return collate

    def format_state(self) -> dict[str, Any]:
        """``zoo generate`` ends decoder prompts with ``[SEP]`` when ``kind`` is ``instruction``."""
        return {"kind": "instruction", "separator": "[SEP]", "max_response_len": self.max_response_len}
