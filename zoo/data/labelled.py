"""``LabelledTextDataModule``: text + label examples for sequence classification.

Examples come from your JSON Lines / CSV / parquet files (fields ``text`` and ``label``, renamable)
or from the built-in task — which part of the Python documentation a passage comes from
(``zoo.data.classification.python_docs_passages``), five classes, nothing downloaded.

Labels become ids in a fixed order: ``label_set`` when given, else the sorted distinct labels of the
training split. The map is part of the data module's checkpoint entry and of the classifier's
hyper-parameters, so predictions are written with the label names the data used.

Batches, right-padded, masks True at real tokens: ``input_ids``, ``attention_mask`` (b, t),
``labels`` (b,) and ``index`` (b,), the example's position in its split. Encoders read
``[CLS] text [SEP]`` (the format BERT's MLM pretraining uses); decoders and encoder-decoders read
``text </s>`` (the end of a document in their pretraining), whose last token is what they classify by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.data.classification import DOC_LABELS, python_docs_passages
from zoo.data.finetuning import FineTuneDataModule, split_by_hash, truncate
from zoo.data.objectives import pad_sequences
from zoo.data.records import RecordFiles, RecordFormat, load_records, resolve_record_files
from zoo.models.registry import Shape

Label = str | int
Example = tuple[str, int]  # (text, label id)


def sort_labels(values: list[Label]) -> list[Label]:
    """Distinct labels in a stable order: numbers numerically, strings alphabetically."""
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, int) for v in distinct):
        return sorted(distinct)
    return sorted(distinct, key=str)


class LabelledTextDataModule(FineTuneDataModule):
    """Labelled text for ``zoo.tasks`` classifiers (``BertClassifier``, ``GPTClassifier``, ``T5Classifier``).

    Args:
        data_files: Your files: a path or glob (train), a list, or a dict with ``train`` and optionally
            ``validation`` and ``test``. Null = the built-in task (``builtin``).
        data_format: ``json`` (JSON Lines or a JSON array), ``csv`` or ``parquet``; null = from the extensions.
        text_field: Field holding the text.
        label_field: Field holding the label (a string or an integer).
        label_set: The labels in id order; null = the sorted distinct training labels. A training label
            outside it is refused.
        builtin: The built-in task used without data_files: ``python_docs`` (which part of the Python
            documentation a passage comes from: language reference, text & data, files & OS,
            internet & concurrency, development tools).
        builtin_train_per_class: Built-in task: training passages per class.
        input_format: ``auto`` (``cls_sep`` for encoders, else ``eos``), ``cls_sep`` = ``[CLS] text
            [SEP]``, ``eos`` = ``text </s>``.
        **kwargs: ``tokenizer``, ``tokenizer_path``, ``vocab_size``, ``max_seq_len``, ``batch_size``,
            ... as in ``zoo.data.finetuning.FineTuneDataModule``.
    """

    def __init__(
        self,
        data_files: RecordFiles | None = None,
        data_format: RecordFormat | None = None,
        text_field: str = "text",
        label_field: str = "label",
        label_set: list[Label] | None = None,
        builtin: Literal["python_docs"] = "python_docs",
        builtin_train_per_class: int = 500,
        input_format: Literal["auto", "cls_sep", "eos"] = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if input_format not in ("auto", "cls_sep", "eos"):
            raise ValueError(f"input_format={input_format!r} must be 'auto', 'cls_sep' or 'eos'")
        if builtin != "python_docs":
            raise ValueError(f"builtin={builtin!r} is not a built-in task; the one built in is 'python_docs'")
        if label_set is not None and len(set(label_set)) != len(label_set):
            raise ValueError(f"label_set={label_set} lists a label twice")
        self.text_field, self.label_field = text_field, label_field
        self.given_labels = label_set
        self.builtin, self.builtin_train_per_class = builtin, builtin_train_per_class
        self.input_format = input_format
        self._files = None
        if data_files is not None:  # every file checked now, before a tokenizer or model is built
            fields = {"text_field": text_field, "label_field": label_field}
            self._files, self._format = resolve_record_files(data_files, data_format, fields)
        self._labels: list[Label] | None = None
        self.save_hyperparameters()

    # Examples ---------------------------------------------------------------------------------
    def _read_splits(self) -> dict[str, list[Example]]:
        if self._files is None:
            self._labels = list(DOC_LABELS)
            splits = python_docs_passages(self.seed, train_per_class=self.builtin_train_per_class)
            return {split: list(items) for split, items in splits.items()}
        rows = load_records(self._files, self._format, {self.text_field: "text", self.label_field: "label"},
                            bad_records=self.bad_records, report=rank_zero_warn)
        raw = {split: [(r[self.text_field], r[self.label_field]) for r in items] for split, items in rows.items()}
        if "validation" not in raw:
            raw.update(split_by_hash(raw["train"], lambda example: example[0], self.val_fraction, self.seed))
        self._labels = self._label_set(raw)
        ids = {label: i for i, label in enumerate(self._labels)}
        return {split: [(text, ids[label]) for text, label in items] for split, items in raw.items()}

    def _label_set(self, raw: dict[str, list[tuple[str, Label]]]) -> list[Label]:
        """The label order, refusing in one line labels the training split does not define."""
        train = sort_labels([label for _, label in raw["train"]])
        if self.given_labels is not None:
            outside = [label for label in train if label not in self.given_labels]
            if outside:
                raise ValueError(f"training label(s) {outside} are not in label_set={self.given_labels}")
            known = list(self.given_labels)
        else:
            known = train
        for split, items in raw.items():
            unseen = Counter(label for _, label in items if label not in known)
            if unseen:
                label, count = unseen.most_common(1)[0]
                raise ValueError(
                    f"{split} label {label!r} ({count} example(s)) does not occur in the training split, whose "
                    f"labels are {known}; a classifier cannot learn a class it never sees"
                )
        return known

    @property
    def labels(self) -> list[Label]:
        """Label names (strings or integers) in id order."""
        if self._labels is None:
            self.raw_examples("train")
        assert self._labels is not None
        return list(self._labels)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def _tokenizer_texts(self, train: list[Example]) -> list[str]:
        return [text for text, _ in train]

    def _encode(self, examples: list[Example]) -> list[tuple[list[int], int]]:
        ids = self.tokenizer.encode_batch([text for text, _ in examples])
        return [(row, label) for row, (_, label) in zip(ids, examples, strict=True)]

    # Batches ----------------------------------------------------------------------------------
    def resolved_input_format(self, shape: Shape) -> str:
        if self.input_format != "auto":
            return self.input_format
        return "cls_sep" if shape == "encoder" else "eos"

    def _collator(self, shape: Shape) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        tok, room = self.tokenizer, self.max_seq_len
        if self.resolved_input_format(shape) == "cls_sep":
            def wrap(ids: list[int]) -> list[int]:
                return [tok.cls_id, *truncate(ids, room - 2), tok.sep_id]
        else:
            def wrap(ids: list[int]) -> list[int]:
                return [*truncate(ids, room - 1), tok.eos_id]

        def collate(batch: list[tuple[int, tuple[list[int], int]]]) -> dict[str, torch.Tensor]:
            input_ids, mask = pad_sequences([wrap(ids) for _, (ids, _) in batch], tok.pad_id)
            return {"input_ids": input_ids, "attention_mask": mask,
                    "labels": torch.tensor([label for _, (_, label) in batch]),
                    "index": torch.tensor([index for index, _ in batch])}

        return collate

    def format_state(self) -> dict[str, Any]:
        return {"kind": "classification", "labels": self.labels}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint trained with another tokenizer or another label map."""
        super().load_state_dict(state_dict)
        saved = state_dict.get("labels")
        if saved is not None and list(saved) != self.labels:
            raise ValueError(f"checkpoint labels {list(saved)} differ from the data's {self.labels}")
