"""Shared pieces of the fine-tuning tests: tiny data (a char tokenizer over a learnable labelled set
and reversal pairs), tiny configs per family, checkpoints written as ``zoo fit`` writes them, Hugging
Face models built from configs (random weights, nothing downloaded), and a few optimizer steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import lightning.pytorch  # noqa: F401  (version string below)
import torch
import torch.nn.functional as F

from zoo.data.instruction import InstructionDataModule
from zoo.data.labelled import LabelledTextDataModule
from zoo.models.registry import FAMILIES, Shape
from zoo.tasks.base import TASK_KEY, LanguageModelTask

FAMILY_NAMES = ("bert", "gpt", "llama", "t5")
WORDS = {"red": "colour", "blue": "colour", "cat": "animal", "dog": "animal", "oak": "tree", "elm": "tree"}


def labelled_file(directory: Path) -> Path:
    """Texts whose label follows from a keyword: learnable in a few steps."""
    rows = [{"text": f"the {word} number {i}", "label": label} for i in range(8) for word, label in WORDS.items()]
    path = directory / "labelled.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def pairs_file(directory: Path) -> Path:
    rows = [{"prompt": f"reverse {word}{i}", "response": f"{i}{word[::-1]}"} for i in range(6) for word in WORDS]
    path = directory / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def labelled_data(directory: Path, shape: Shape, **kwargs: Any) -> LabelledTextDataModule:
    dm = LabelledTextDataModule(data_files=str(labelled_file(directory)), tokenizer="char", shape=shape,
                                batch_size=8, val_fraction=0.25, max_seq_len=32, **kwargs)
    dm.setup("fit")
    return dm


def instruction_data(directory: Path, shape: Shape) -> InstructionDataModule:
    dm = InstructionDataModule(data_files=str(pairs_file(directory)), tokenizer="char", shape=shape, batch_size=8,
                               max_seq_len=32,
                               val_fraction=0.25)
    dm.setup("fit")
    return dm


def tiny_config(family: str, vocab_size: int, **fields: Any) -> Any:
    values = dict(vocab_size=vocab_size, embed_dim=32, num_layers=1, num_heads=4, max_seq_len=64, dropout=0.0)
    if family == "llama":
        values.update(num_kv_heads=2)
    return FAMILIES[family].make_config(**{**values, **fields})


def save_checkpoint(task: LanguageModelTask, path: Path, tokenizer_file: Path | None = None) -> Path:
    """What ``zoo fit`` writes: weights, plain hyper-parameters, the task's name, the data's record."""
    checkpoint: dict[str, Any] = {"pytorch-lightning_version": L.__version__, "state_dict": task.state_dict(),
                                  "hyper_parameters": dict(task.hparams)}
    checkpoint[TASK_KEY] = f"{type(task).__module__}.{type(task).__qualname__}"
    if tokenizer_file is not None:
        from zoo.data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_file)
        checkpoint["TextDataModule"] = {"tokenizer_file": str(tokenizer_file), "vocab_size": tokenizer.vocab_size,
                                        "tokenizer_fingerprint": tokenizer.fingerprint}
    torch.save(checkpoint, path)
    return path


def pretraining_checkpoint(family: str, directory: Path, tokenizer_file: Path, vocab_size: int) -> Path:
    """A pretraining task of ``family`` (random weights) saved as a zoo checkpoint."""
    task = FAMILIES[family].task_class(tiny_config(family, vocab_size))
    return save_checkpoint(task, directory / f"{family}-pretrained.ckpt", tokenizer_file)


def hf_directory(family: str, directory: Path, vocab_size: int) -> Path:
    """A Hugging Face model of ``family`` built from its config (random weights), saved with save_pretrained."""
    import transformers

    common = dict(vocab_size=vocab_size)
    if family == "bert":
        model = transformers.BertForMaskedLM(transformers.BertConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, **common))
    elif family == "gpt":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, n_positions=64,
                                                                      **common))
    elif family == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, **common))
    else:
        model = transformers.T5ForConditionalGeneration(transformers.T5Config(
            d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, **common))
    path = directory / f"{family}-hf"
    model.save_pretrained(path)
    return path


def loss_of(task: LanguageModelTask, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if hasattr(task, "head"):  # a classifier
        return F.cross_entropy(task(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    logits, labels = task.logits_and_labels(batch)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def train_steps(task: LanguageModelTask, loader: Any, steps: int = 3, lr: float = 1e-2) -> list[float]:
    """``steps`` AdamW steps on the trainable parameters; returns the losses."""
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=lr)
    task.train()
    losses, batches = [], iter(loader)
    for _ in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        loss = loss_of(task, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def fit(task: LanguageModelTask, datamodule: Any, steps: int = 3) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=1, val_check_interval=steps,
                        num_sanity_val_steps=0, accelerator="cpu", devices=1)
    trainer.fit(task, datamodule=datamodule)
    return trainer


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
