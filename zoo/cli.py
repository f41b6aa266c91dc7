"""``zoo``: the LightningCLI entry point (fit / validate / test / predict, ``--print_config``).

A run is three choices, each by ``class_path`` in YAML: the objective (``zoo.tasks.MaskedLM``,
``CausalLM``, ``Seq2SeqLM`` — each building its family's model), the data module, and the Trainer.
The vocabulary size and special token ids flow from the data module to the model config through
argument links, so they are never typed twice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import torch
from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI

from zoo.callbacks import (
    BestCheckpoint,
    FiniteLossGuard,
    GracefulStop,
    LastCheckpoint,
    PredictionWriter,
    StepSeeds,
    check_writable,
)
from zoo.tasks import LanguageModelTask
from zoo.tasks.base import TASK_KEY

# (data module attribute, model config field) pairs linked at instantiation time.
DATA_TO_MODEL_LINKS = (
    ("vocab_size", "vocab_size"),
    ("pad_id", "pad_token_id"),
    ("bos_id", "bos_token_id"),
    ("eos_id", "eos_token_id"),
)


def default_loggers(save_dir: str = "runs") -> list[dict]:
    """CSV always (readable anywhere); TensorBoard too when it is installed."""
    csv = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": save_dir, "name": "csv"}}
    loggers = [csv]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.insert(
            0,
            {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
             "init_args": {"save_dir": save_dir, "name": "tensorboard"}},
        )
    return loggers


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's links, the best-by-validation ``checkpoint`` and the periodic
    ``last_checkpoint`` (``last.ckpt``) beside it, a learning-rate monitor, and — always on, for
    exact resumption — ``StepSeeds``, ``GracefulStop`` and ``FiniteLossGuard`` (see zoo.callbacks)."""

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in DATA_TO_MODEL_LINKS:
            parser.link_arguments(f"data.{source}", f"model.init_args.config.{target}", apply_on="instantiate")
        # Classifiers take their label names from a labelled data module (skipped for other tasks/data).
        parser.link_arguments("data.labels", "model.init_args.labels", apply_on="instantiate")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val_loss",
            "checkpoint.mode": "min",
            "checkpoint.save_last": False,  # last.ckpt is last_checkpoint's, written whatever validation says
            "checkpoint.save_top_k": 1,
            "checkpoint.filename": "best-{step}-{val_loss:.3f}",
            "checkpoint.auto_insert_metric_name": False,
        })
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.link_arguments("checkpoint.dirpath", "last_checkpoint.dirpath")  # last.ckpt beside the best
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")  # acts in `zoo predict` only
        from zoo.speed import CompileModel, SpeedMonitor  # --compile.enabled true; tokens/s, MFU, data wait

        parser.add_lightning_class_args(CompileModel, "compile")
        parser.add_lightning_class_args(SpeedMonitor, "speed_monitor")

    def before_fit(self) -> None:
        """Pre-flight, before any data is read or step taken: every directory the run will write
        checkpoints or logs to must be creatable and writable, else one line naming it. (The launching
        process checks; DDP workers started later would only race it.)"""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        for callback in trainer.checkpoint_callbacks:
            if callback.dirpath is not None:
                check_writable(callback.dirpath, "checkpoint directory (--checkpoint.dirpath)")
        for logger in trainer.loggers:
            if getattr(logger, "save_dir", None) is not None:
                check_writable(logger.save_dir, f"log directory of {type(logger).__name__} (--trainer.logger)")
        if not trainer.loggers:
            check_writable(trainer.default_root_dir, "directory --trainer.default_root_dir")


    def before_instantiate_classes(self) -> None:
        """With ``--model.init_args.pretrained``, the data reads the tokenizer the weights were
        trained with, unless ``--data.init_args.tokenizer_path`` names one."""
        from zoo.tasks.finetune import use_pretrained_tokenizer

        subcommand = self.config.get("subcommand")
        use_pretrained_tokenizer(self.config[subcommand] if subcommand else self.config)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, take the model (task class and architecture) from the checkpoint, so
        ``zoo validate --ckpt_path X --config same.yaml`` and ``zoo fit --ckpt_path last`` rebuild what
        was trained. Lightning's own version cannot rebuild a nested config dataclass."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        task, hparams = checkpoint.get(TASK_KEY), checkpoint.get("hyper_parameters")
        if not task or not hparams:
            raise ValueError(f"--ckpt_path {ckpt_path} is not a zoo checkpoint (no '{TASK_KEY}' entry)")
        model = {"class_path": task, "init_args": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)


def run(args: list[str] | None = None) -> ZooCLI:
    """Build and run the CLI on ``args`` (``sys.argv[1:]`` when None); errors propagate."""
    return ZooCLI(
        LanguageModelTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,  # each task builds AdamW with its own parameter groups
        seed_everything_default=1234,
        save_config_kwargs={"overwrite": True},  # a second run into the same directory must not abort
        # Persistent callbacks (LightningCLI appends them to any configured ones) that make a resumed run
        # exact and a stopped one safe; the checkpoints are configurable (`checkpoint`, `last_checkpoint`).
        trainer_defaults={"logger": default_loggers(), "callbacks": [StepSeeds(), GracefulStop(), FiniteLossGuard()]},
        # Raise instead of printing usage and exiting, so `main` can shorten the message to one line.
        parser_kwargs={"exit_on_error": False},
        args=args,
    )


# Subcommands beside LightningCLI's fit/validate/test/predict: name -> module with `main(argv) -> int`.
EXTRA_COMMANDS = {
    "convert": "zoo.commands.convert",
    "generate": "zoo.commands.generate",
    "compare": "zoo.commands.compare",
}


def main() -> None:
    """Console-script entry point (``zoo``): bad input ends in one line, not a traceback
    (set ZOO_DEBUG=1 for the traceback)."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        # LightningCLI's help knows only its own subcommands.
        print(f"zoo commands: fit, validate, test, predict (LightningCLI, below); {', '.join(EXTRA_COMMANDS)} "
              "(zoo COMMAND --help)\n")
    try:
        if len(sys.argv) > 1 and sys.argv[1] in EXTRA_COMMANDS:
            command = importlib.import_module(EXTRA_COMMANDS[sys.argv[1]])
            sys.exit(command.main(sys.argv[2:]))
        run()
    except (ValueError, FileNotFoundError, TypeError, ConnectionError, ArgumentError) as error:
        if os.environ.get("ZOO_DEBUG"):
            raise
        sys.exit(f"zoo: error: {one_line(error)}")


def one_line(error: BaseException) -> str:
    """The root cause of ``error`` in one line. jsonargparse wraps a config's own ValueError in
    "Does not validate against any of the Union subtypes"; the useful part is the innermost cause,
    or the 'Parser key "x": Expected ...' pair of a type error."""
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    for link in reversed(chain):  # the innermost, most specific key first
        lines = [line.strip(" -") for line in str(link).splitlines() if line.strip(" -")]
        for i, line in reversed(list(enumerate(lines))):
            if line.startswith("Parser key") and i + 1 < len(lines):
                return f"{line.removeprefix('Parser key ').rstrip(':')}: {lines[i + 1]}"
    lines = [line for line in str(chain[-1]).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(chain[-1]).__name__


if __name__ == "__main__":
    main()
