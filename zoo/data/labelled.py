"""``LabelledTextDataModule``: text + label examples for sequence classification.

Examples come from your JSON Lines / CSV / parquet files (fields ``text`` and ``label``, renamable)
or from a built-in task — which part of the Python documentation a passage comes from
(``zoo.data.classification.python_docs_passages``), five classes, nothing downloaded; or whether a
string of ``()[]`` is balanced (``brackets``, ``zoo.data.synthetic``: one character per token, test
strings longer than any in training).

Labels become ids in a fixed order: ``label_set`` when given, else the sorted distinct labels of the
training split. The map is part of the data module's checkpoint entry and of the classifier's
hyper-parameters, so predictions are written with the label names the data used.

Batches, right-padded, masks True at real tokens: ``input_ids``, ``attention_mask`` (b, t),
``labels`` (b,) and ``index`` (b,), the example's position in its split. Encoders read
``[CLS] text [SEP]`` (the format BERT's MLM pretraining uses); decoders and encoder-decoders read
``text </s>`` (the end of a document in their pretraining), whose last token is what they classify by.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.data.classification import DOC_LABELS, python_docs_passages
from zoo.data.finetuning import FineTuneDataModule, split_by_hash
from zoo.data.records import RecordFiles, RecordFormat, load_records, resolve_record_files
from zoo.data.synthetic import BRACKET_LABELS, SyntheticSplits, bracket_splits, check_synthetic
from zoo.models.registry import Shape
from zoo.tasks.formats import format_of

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
            internet & concurrency, development tools), or ``brackets`` (balanced or a near miss;
            with ``tokenizer: char``).
        builtin_train_per_class: ``python_docs``: training passages per class.
        builtin_eval_per_class: ``python_docs``: validation and test passages per class.
        synthetic: ``brackets``: sizes and lengths of the splits; null = the defaults.
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
        builtin: Literal["python_docs", "brackets"] = "python_docs",
        builtin_train_per_class: int = 500,
        builtin_eval_per_class: int = 40,
        synthetic: SyntheticSplits | None = None,
        input_format: Literal["auto", "cls_sep", "eos"] = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if input_format not in ("auto", "cls_sep", "eos"):
            raise ValueError(f"input_format={input_format!r} must be 'auto', 'cls_sep' or 'eos'")
        if builtin not in ("python_docs", "brackets"):
            raise ValueError(f"builtin={builtin!r} is not a built-in task; choose 'python_docs' or 'brackets'")
        self.synthetic = check_synthetic(builtin, synthetic, self) if data_files is None else None
        if label_set is not None and len(set(label_set)) != len(label_set):
            raise ValueError(f"label_set={label_set} lists a label twice")
        self.text_field, self.label_field = text_field, label_field
        self.given_labels = label_set
        self.builtin, self.builtin_per_class = builtin, (builtin_train_per_class, builtin_eval_per_class)
        self.input_format = input_format
        self._files = None
        if data_files is not None:  # every file checked now, before a tokenizer or model is built
            fields = {"text_field": text_field, "label_field": label_field}
            self._files, self._format = resolve_record_files(data_files, data_format, fields)
        self._labels: list[Label] | None = None
        self.save_hyperparameters()
        self.hparams["synthetic"] = dataclasses.asdict(self.synthetic) if self.synthetic else None  # plain values

    # Examples ---------------------------------------------------------------------------------
    def _read_splits(self) -> dict[str, list[Example]]:
        if self._files is None and self.synthetic is not None:
            self._labels = list(BRACKET_LABELS)
            return bracket_splits(self.seed, self.synthetic.sizes(), self.synthetic.lengths("brackets"))
        if self._files is None:
            self._labels = list(DOC_LABELS)
            train, evaluation = self.builtin_per_class
            splits = python_docs_passages(self.seed, train_per_class=train, eval_per_class=evaluation)
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
    def _collator(self, shape: Shape) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        layout = format_of(shape)(self.tokenizer)

        def collate(batch: list[tuple[int, tuple[list[int], int]]]) -> dict[str, torch.Tensor]:
            return {**layout.classification([ids for _, (ids, _) in batch], self.max_seq_len, self.input_format),
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
