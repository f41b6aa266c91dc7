"""``FineTuneTask``: what fine-tuning adds to ``LanguageModelTask`` — start from pretrained weights
whose architecture the model takes over, freeze parts of it, or train a ``peft`` adapter instead.

``pretrained`` may be any zoo checkpoint of the same family (a pretraining run, another fine-tune,
one with adapters, which are merged first) or a Hugging Face directory (``zoo.hf.from_hf``). The
model's architecture comes from it — the YAML's ``config`` keeps only runtime choices (dropout,
attention kernel) and the special token ids — so a fine-tuning config works with whatever size was
pretrained. Only the body is loaded: a task's own new parts (a classifier head) start fresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.adapters import AdapterConfig, apply_adapter, count_parameters, merge_adapters
from zoo.checkpoints import checkpoint_tokenizer, load_checkpoint, run_checkpoint
from zoo.data.tokenizers import load_tokenizer, materialise_tokenizer
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig
from zoo.tasks.base import LanguageModelTask, load_task

#: ``none``: train everything; ``body``: train only what the task adds (a classifier head) and any
#: adapter; ``embeddings``: freeze the token (and position) embeddings, train the rest.
Freeze = Literal["none", "body", "embeddings"]
#: Config fields a fine-tune may set itself whatever the pretrained model had.
RUNTIME_FIELDS = ("dropout", "attn_implementation", "pad_token_id", "bos_token_id", "eos_token_id")


def load_pretrained_model(path: str) -> ZooModel:
    """The model held by a zoo checkpoint or run directory (adapters merged) or a Hugging Face directory."""
    path = str(run_checkpoint(path, "pretrained"))
    if Path(path).is_dir():
        from zoo.hf import from_hf  # transformers is needed only here

        return from_hf(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"pretrained={path}: no such file or directory")
    return merge_adapters(load_task(path).model)


def pretrained_tokenizer(path: str) -> str | None:
    """A tokenizer file for what a pretrained source was trained with: the tokenizer a zoo checkpoint
    carries (written once into the cache, so code taking a ``tokenizer_path`` can read it), or
    ``zoo_tokenizer.*`` inside a Hugging Face directory that ``zoo convert`` wrote. None when it
    holds none."""
    source = run_checkpoint(path, "pretrained")
    if source.is_dir():
        found = sorted(source.glob("zoo_tokenizer.*"))
        return str(found[0].resolve()) if found else None
    if not source.is_file():
        return None
    checkpoint = load_checkpoint(source, what="pretrained")  # one line for a file that is no zoo checkpoint
    tokenizer = checkpoint_tokenizer(checkpoint, source, "pretrained")
    if tokenizer is None:
        return None
    from zoo.data.datamodule import default_cache_dir

    return str(materialise_tokenizer(tokenizer, default_cache_dir()))


def adopt_architecture(pretrained: TransformerConfig, given: TransformerConfig, path: str) -> TransformerConfig:
    """``pretrained``'s architecture with ``given``'s runtime fields, refusing in one line another
    family or another vocabulary (the data's tokenizer is not the one the weights were trained with)."""
    if type(pretrained) is not type(given):
        raise ValueError(f"pretrained={path} holds a {type(pretrained).__name__} model; this task fine-tunes a "
                         f"{type(given).__name__} (choose the task of that family)")
    if pretrained.vocab_size != given.vocab_size:
        tokenizer = pretrained_tokenizer(path)
        hint = f"pass --data.init_args.tokenizer_path {tokenizer}" if tokenizer else \
            "pass --data.init_args.tokenizer_path with the tokenizer the weights were trained with"
        raise ValueError(f"pretrained={path} has vocab_size {pretrained.vocab_size} but the data's tokenizer has "
                         f"{given.vocab_size}; {hint}")
    values = pretrained.to_dict()
    values.update({name: getattr(given, name) for name in RUNTIME_FIELDS})
    if given.position == pretrained.position and given.position != "learned":
        values["max_seq_len"] = max(given.max_seq_len, pretrained.max_seq_len)  # no table to outgrow
    return type(given).from_dict(values)


def check_tokenizer_matches(path: str, tokenizer_file: str | None) -> None:
    """Refuse a data tokenizer other than the one a zoo checkpoint recorded (same size, other pieces:
    the weights would read every id as a different token)."""
    recorded = pretrained_tokenizer(path)
    if recorded is None or tokenizer_file is None:
        return
    if load_tokenizer(recorded).fingerprint != load_tokenizer(tokenizer_file).fingerprint:
        raise ValueError(f"the data's tokenizer {tokenizer_file} is not the one pretrained={path} was trained with "
                         f"({recorded}); leave --data.init_args.tokenizer_path unset to use that one")


class FineTuneTask(LanguageModelTask):
    """Base of the fine-tuning tasks (not used directly).

    Args:
        config: The model architecture; with ``pretrained``, only its runtime fields count (see the
            module docstring).
        pretrained: Initial weights: a zoo checkpoint (``.ckpt``) of the same family or a Hugging Face
            directory. Not saved in checkpoints, which hold the weights themselves.
        freeze: ``none`` (train all), ``body`` (train only the task's new head and any adapter),
            ``embeddings`` (freeze token and position embeddings).
        adapter: A ``peft`` adapter (LoRA, ...) to train instead of the model's weights, which it
            freezes; see ``zoo.adapters.AdapterConfig``.
        **kwargs: Optimizer and schedule settings of ``zoo.tasks.base.LanguageModelTask``.
    """

    def __init__(
        self,
        config: TransformerConfig,
        pretrained: str | None = None,
        freeze: Freeze = "none",
        adapter: AdapterConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if freeze not in ("none", "body", "embeddings"):
            raise ValueError(f"freeze={freeze!r} must be 'none', 'body' or 'embeddings'")
        adapter = AdapterConfig.from_value(adapter)
        source = None
        if pretrained is not None:
            if isinstance(config, Mapping):
                config = self.config_class.from_dict(dict(config))
            source = load_pretrained_model(str(pretrained))
            config = adopt_architecture(source.config, config, str(pretrained))
        super().__init__(config, **kwargs)
        self.hparams["adapter"] = adapter.to_dict() if adapter else None  # plain values in checkpoints
        if source is not None:
            self.model.load_state_dict(source.state_dict())
            rank_zero_info(f"Fine-tuning {type(source).__name__} weights from {pretrained} "
                           f"({source.num_parameters():,} parameters)")
        self.pretrained_path = None if pretrained is None else str(pretrained)
        self.freeze_parts(freeze)
        if adapter is not None:
            apply_adapter(self.model, adapter)
        for parameter in self.unused_parameters():
            parameter.requires_grad_(False)

    def freeze_parts(self, freeze: Freeze) -> None:
        if freeze == "body":
            self.model.requires_grad_(False)
        elif freeze == "embeddings":
            for module in self.model.modules():
                if isinstance(module, nn.Embedding) and module.embedding_dim == self.config.embed_dim:
                    module.requires_grad_(False)

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters of the model this objective never reads (an LM head a classifier does not use):
        frozen, so the optimizer and DDP skip them."""
        return []

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if self.pretrained_path is not None and datamodule is not None:
            file = getattr(datamodule, "tokenizer_file", None)
            check_tokenizer_matches(self.pretrained_path, None if file is None else str(file))

    def on_fit_start(self) -> None:
        trainable, total = count_parameters(self)
        adapter = self.hparams.get("adapter")
        how = f", {adapter['method']} on {adapter['target_modules']}" if adapter else ""
        rank_zero_info(f"Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f} %){how}")

    def parameter_groups(self, module: nn.Module | None = None) -> list[dict[str, Any]]:
        return super().parameter_groups(self if module is None else module)  # the task's own head included



def use_pretrained_tokenizer(config: Any) -> None:
    """In a parsed ``zoo`` config (a jsonargparse namespace of one subcommand): when the run starts
    from weights — ``--ckpt_path FILE`` or the model's ``pretrained`` — and the data module's
    ``tokenizer_path`` is unset, fill in the tokenizer those weights recorded, so the data's token ids
    are the ones the weights know (``zoo predict --ckpt_path X`` needs no tokenizer flag)."""
    model, data = config.get("model"), config.get("data")
    init_args = data.get("init_args") if data is not None else None
    if init_args is None or "tokenizer_path" not in init_args or init_args["tokenizer_path"]:
        return
    ckpt_path = config.get("ckpt_path")
    pretrained = model.get("init_args", {}).get("pretrained") if model is not None else None
    source = str(ckpt_path) if ckpt_path and run_checkpoint(str(ckpt_path)).is_file() else pretrained
    tokenizer = pretrained_tokenizer(str(source)) if source else None
    if tokenizer is not None:
        init_args["tokenizer_path"] = tokenizer
        rank_zero_info(f"Data tokenizer: {tokenizer} (the one {source} was trained with)")
