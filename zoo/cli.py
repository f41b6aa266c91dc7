"""``zoo``: the LightningCLI entry point (fit / validate / test / predict, ``--print_config``).

A run is three choices, each by ``class_path`` in YAML: the objective (``zoo.tasks.MaskedLM``,
``CausalLM``, ``Seq2SeqLM`` — each building its family's model), the data module, and the Trainer.
The vocabulary size and special token ids flow from the data module to the model config through
argument links, so they are never typed twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from zoo.callbacks import (
    BestCheckpoint,
    FiniteLossGuard,
    GracefulStop,
    LastCheckpoint,
    PredictionWriter,
    StepSeeds,
    check_writable,
    use_atomic_checkpoints,
)
from zoo.checkpoints import load_checkpoint, run_checkpoint, task_class
from zoo.models.config import PRESETS, resolve_preset
from zoo.runs import (
    RESUME_KEYWORDS,
    RUN_DIR_ENV,
    RUN_FILE,
    RUNS_ROOT,
    RunDirectory,
    discard_unused_runs,
    lock_run,
    plan_run,
    release_runs,
    resume_changes,
)
from zoo.speed import reuse_freed_memory
from zoo.tasks import LanguageModelTask

# (data module attribute, model config field) pairs linked at instantiation time.
DATA_TO_MODEL_LINKS = (
    ("vocab_size", "vocab_size"),
    ("pad_id", "pad_token_id"),
    ("bos_id", "bos_token_id"),
    ("eos_id", "eos_token_id"),
)
_LINKED_FIELDS = {field for _, field in DATA_TO_MODEL_LINKS}


def default_loggers() -> list[dict]:
    """CSV always (``metrics.csv`` in the run directory, readable anywhere); TensorBoard too when it is
    installed (``tensorboard/`` in the run directory). The CLI points both at the run directory."""
    loggers = [{"class_path": "zoo.runs.RunCSVLogger", "init_args": {"save_dir": RUNS_ROOT}}]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append({"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                        "init_args": {"save_dir": RUNS_ROOT, "name": "", "version": "tensorboard"}})
    return loggers


class ZooArgumentParser(LightningArgumentParser):
    """LightningCLI's parser without abbreviated options: argparse's prefix matching silently read
    ``--model.init_args.config.num_layer 2`` as ``num_layers`` (jsonargparse 5 drops it too). The
    nested parsers jsonargparse builds for each class take this class, so the rule holds at every depth."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


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
            "checkpoint.enable_version_counter": False,  # one run per directory: no best-...-v1 files
        })
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.link_arguments("checkpoint.dirpath", "last_checkpoint.dirpath")  # last.ckpt beside the best
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")  # acts in `zoo predict` only
        parser.add_lightning_class_args(RunDirectory, "run")
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
        if subcommand:
            check_devices(self.config[subcommand])
            self.effective_config = self._config_text(subcommand)

    def after_instantiate_classes(self) -> None:
        """Tell the run's ``RunDirectory`` what to record: the config as given (``config.yaml``) and as it
        runs (inside each checkpoint, so a resume can be checked against it); give every save the
        atomic ``CheckpointIO``."""
        super().after_instantiate_classes()
        if not self.subcommand:
            return
        use_atomic_checkpoints(self.trainer)
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunDirectory):
                callback.given_config, callback.effective_config = self.given_config, self.effective_config
                callback.resumed = self.resumed
                ckpt_path = self.config[self.subcommand].get("ckpt_path")
                callback.ckpt_path = None if ckpt_path is None else str(ckpt_path)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        """The Trainer, with the zoo's progress display (the run's steps and an ETA; plain lines when
        the output is not a terminal) unless the progress bar is off or another one is configured."""
        from lightning.pytorch.callbacks import ProgressBar

        from zoo.progress import progress_bar

        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if config.get("enable_progress_bar", True) is not False and not any(
                isinstance(c, ProgressBar) for c in [*given, *callbacks]):
            callbacks = [*callbacks, progress_bar()]
        return super()._instantiate_trainer(config, callbacks)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then give a model config's ``preset`` (``zoo.models.config.PRESETS``) its meaning:
        its values become the parser's defaults for that config and the arguments are parsed again,
        so every field given in a YAML file or on the command line wins and only the others take the
        preset's values (``--print_config`` prints the result)."""
        if isinstance(args, (dict, Namespace)):
            return super().parse_arguments(parser, args)
        argv = list(sys.argv[1:] if args is None else args)
        self.config = parser.parse_args([a for a in argv if not a.startswith("--print_config")])
        subcommand = self.config.get("subcommand")
        model = (self.config[subcommand] if subcommand else self.config).get("model")
        preset = model.get("init_args", {}).get("config", {}).get("preset") if isinstance(model, Namespace) else None
        if preset is not None:
            self._parser(subcommand).set_defaults(
                {"model": {"class_path": model.class_path, "init_args": {"config": PRESETS[preset]}}})
        if preset is not None or any(a.startswith("--print_config") for a in argv):
            self.config = parser.parse_args(argv)  # --print_config prints here
        if preset is not None:
            config = (self.config[subcommand] if subcommand else self.config).model.init_args.config
            for key, value in resolve_preset(_import_class(model.class_path).config_class, config.as_dict()).items():
                config[key] = value

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        if self.parser_class is LightningArgumentParser:
            self.parser_class = ZooArgumentParser
        return super().init_parser(**kwargs)

    def _parse_ckpt_path(self) -> None:
        """Plan the run directory (``zoo.runs``), resolve ``--ckpt_path last`` / ``last_or_new`` to the
        run's newest checkpoint, then open the checkpoint through the zoo's loader — one line naming
        the file when it is not a checkpoint, needs unsafe unpickling, is not a zoo checkpoint, or holds
        another family or task than the config's model, before anything is built — and take the model
        (task class and architecture) from it, so ``zoo validate --ckpt_path X --config same.yaml``
        rebuilds what was trained. A ``fit`` that resumes is checked against what the checkpoint was
        trained with (``zoo.runs.resume_changes``). Lightning's other keywords (``best``, ``hpc``,
        ``registry``) and URLs are Lightning's to resolve; every load is ``weights_only=True``."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        config["run"]["name"] = config["run"].get("name") or _run_name(config)  # recorded: the saved config retrains it
        self.given_config = self._config_text(subcommand)  # before the run fills in its own directories
        self._plan_run(subcommand, config)
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            return
        if "weights_only" in config:
            config["weights_only"] = True
        name = str(ckpt_path)
        if name in ("best", "hpc") or name.startswith("registry") or "://" in name:
            return
        model = config.get("model")
        wanted = _import_class(model.class_path) if model is not None and model.get("class_path") else None
        checkpoint = load_checkpoint(ckpt_path, what="--ckpt_path", task=wanted)
        if subcommand == "fit":
            _refuse_weights_only(checkpoint, name)
            applied = resume_changes(checkpoint, self._config_text(subcommand), name)
        saved = task_class(checkpoint)
        cls = wanted if wanted is not None and issubclass(wanted, saved) else saved  # the more specific one
        init_args = dict(checkpoint["hyper_parameters"])
        if subcommand == "fit":  # what the resume changes on purpose: learning rate, schedule, dropout
            for key, value in applied.items():
                init_args[key] = {**init_args.get(key, {}), **value} if isinstance(value, dict) else value
        model = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def _config_text(self, subcommand: str) -> str:
        """This command's config as YAML (what checkpoints record, so a resume can be checked against it)."""
        return self._parser(subcommand).dump(self.config[subcommand], skip_validation=True)

    def _plan_run(self, subcommand: str, config: Any) -> None:
        """Decide this command's directory (``zoo.runs.plan_run``), hold its lock, and point the
        checkpoints, loggers and predictions at it — unless they were given a place explicitly."""
        run = config.get("run") or {}
        trainer = config.get("trainer") or {}
        ckpt_path = str(config["ckpt_path"]) if config.get("ckpt_path") else None
        if ckpt_path and ckpt_path not in RESUME_KEYWORDS:  # a run directory stands for its newest checkpoint
            ckpt_path = config["ckpt_path"] = os.fspath(run_checkpoint(ckpt_path, "--ckpt_path"))
        explicit_checkpoints = (config.get("checkpoint") or {}).get("dirpath")
        plan = plan_run(
            subcommand,
            name=run["name"],
            root=Path(trainer.get("default_root_dir") or RUNS_ROOT),
            version=run.get("version"),
            run_dir=Path(run["dir"]) if run.get("dir") else None,
            ckpt_path=ckpt_path,
            checkpoint_dir=Path(explicit_checkpoints) if explicit_checkpoints else None,
        )
        self.resumed = plan.resumed
        # validate / test / predict of a trained run write beside it, never over its own files.
        out = plan.dir if subcommand == "fit" or not (plan.dir / RUN_FILE).is_file() else plan.dir / subcommand
        lock_run(out)
        os.environ[RUN_DIR_ENV] = os.fspath(out)  # DDP worker processes re-parse: same directory for all ranks
        self.run_dir = out
        config["run"]["dir"] = os.fspath(out)
        if ckpt_path in RESUME_KEYWORDS:
            config["ckpt_path"] = None if plan.checkpoint is None else os.fspath(plan.checkpoint)
        if subcommand == "fit" and not explicit_checkpoints:
            config["checkpoint"]["dirpath"] = os.fspath((out / "checkpoints").absolute())
        if subcommand == "fit":  # linked at parse time, which was before the run had a directory
            config["last_checkpoint"]["dirpath"] = config["checkpoint"]["dirpath"]
        if not trainer.get("default_root_dir"):
            trainer["default_root_dir"] = os.fspath(out)
        loggers = trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = logger.get("init_args") if hasattr(logger, "get") else None
            if init_args is not None and init_args.get("save_dir") == RUNS_ROOT:
                init_args["save_dir"] = os.fspath(out)
        writer = config.get("prediction_writer")
        if writer is not None and not writer.get("output_path"):
            stem = Path(str(config["ckpt_path"])).stem if config.get("ckpt_path") else "predictions"
            writer["output_path"] = os.fspath(out / f"{stem}.jsonl")


def check_devices(config: Any) -> None:
    """Before anything is built: an accelerator this machine does not have is refused in one line, and
    more CPU processes than cores get a warning that says what the global batch becomes."""
    trainer = config.get("trainer") or {}
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"--trainer.accelerator {accelerator}: no CUDA GPU is visible to this process "
                         "(torch.cuda.is_available() is False); use --trainer.accelerator cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--trainer.accelerator mps: this machine has no Apple MPS device; use --trainer.accelerator "
                         "cpu (or auto)")
    devices = trainer.get("devices")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = int(devices) if isinstance(devices, int) or (isinstance(devices, str) and devices.isdigit()) else None
    if on_cpu and count is not None and count > cores and not _is_worker_process():
        batch = ((config.get("data") or {}).get("init_args") or {}).get("batch_size")
        global_batch = f"{count} x {batch} = {count * batch} sequences" if isinstance(batch, int) else f"{count}x"
        print(f"zoo: warning: --trainer.devices {count} starts {count} training processes on {cores} CPU cores: "
              f"each gets less than a core, and the global batch per step is {global_batch}", file=sys.stderr)


def _is_worker_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") != "0"


def _run_name(config: Any) -> str:
    """A run's default name: the first ``--config`` file's stem, else the task class's name."""
    files = config.get("config") or []
    if files:
        return Path(str(files[0])).stem
    model = config.get("model")
    return str(model.class_path).rsplit(".", 1)[-1].lower() if model is not None and model.get("class_path") \
        else "run"


def _refuse_weights_only(checkpoint: Any, name: str) -> None:
    """A ``fit`` resumes only from a training checkpoint; one that holds weights alone (``zoo convert``'s,
    or ``save_weights_only``) starts a fine-tune through ``pretrained`` instead — said before any data work."""
    if "optimizer_states" in checkpoint and "loops" in checkpoint:
        return
    raise ValueError(f"--ckpt_path {name}: holds weights only (no optimizer or loop state to resume; written by zoo "
                     f"convert or with save_weights_only); to train from these weights use "
                     f"--model.init_args.pretrained {name}")


def run(args: list[str] | None = None) -> ZooCLI:
    """Build and run the CLI on ``args`` (``sys.argv[1:]`` when None); errors propagate, and a run that
    failed before it began leaves no empty run directory."""
    try:
        return _cli(args)
    except BaseException:
        discard_unused_runs()
        raise
    finally:
        release_runs()  # the run is over: another command of this process (or another process) may write it


def _cli(args: list[str] | None) -> ZooCLI:
    return ZooCLI(
        LanguageModelTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,  # each task builds AdamW with its own parameter groups
        seed_everything_default=1234,
        save_config_callback=None,  # the run's RunDirectory writes config.yaml (and keeps it on resume)
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
    "eval": "zoo.commands.eval",
}


#: What ``zoo COMMAND`` does, for ``zoo --help``.
COMMAND_HELP = {
    "fit": "train a model (LightningCLI; a run directory under runs/<name>/version_N)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split (validation when the data has none)",
    "predict": "score each sequence / classify each example, written as JSON lines into the run",
    "generate": "complete prompts (GPT, T5) or fill [MASK] (BERT) with a checkpoint",
    "convert": "a zoo checkpoint to a Hugging Face directory, or back (zoo convert --help: architectures)",
    "compare": "train architectures on tasks from one study file and compare them",
    "eval": "score a checkpoint on lm-evaluation-harness tasks (every family, offline local tasks)",
}


def main() -> None:
    """Console-script entry point (``zoo``): the expected failures — bad input, files and disks,
    Lightning misconfiguration, data set errors, devices — end in one ``zoo: error:`` line naming what
    is wrong (``expected_error``); a bug still shows its traceback (ZOO_DEBUG=1: every traceback)."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        width = max(map(len, COMMAND_HELP))
        print("usage: zoo COMMAND [options]   (zoo COMMAND --help for each)\n\ncommands:")
        for name, text in COMMAND_HELP.items():
            print(f"  {name:<{width}}  {text}")
        print()
    if os.environ.get("LOCAL_RANK", "0") != "0":
        die_with_parent()
    reuse_freed_memory()  # before the first large tensor
    try:
        _check_negative_values(sys.argv[1:])
        if len(sys.argv) > 1 and sys.argv[1] in EXTRA_COMMANDS:
            command = importlib.import_module(EXTRA_COMMANDS[sys.argv[1]])
            sys.exit(command.main(sys.argv[2:]))
        _check_config_files(sys.argv[1:])
        run()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        line = None if os.environ.get("ZOO_DEBUG") else expected_error(error)
        if line is None:
            raise
        sys.exit(f"zoo: error: {line}")


def expected_error(error: BaseException) -> str | None:
    """The one line for a failure a user can act on; None for a bug (its traceback is the report).

    Expected: bad values (``ValueError``, jsonargparse's errors), files, directories and disks (the
    ``OSError`` family: missing, unreadable, full, read-only, quota), Lightning's misconfiguration
    (e.g. an accelerator the machine does not have), ``datasets``' generation errors (their cause, with
    the file), and device errors of torch (no GPU, no driver, out of memory, a bad device string).
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if isinstance(error, (ValueError, TypeError, ArgumentError, MisconfigurationException)):
        return one_line(error)
    if isinstance(error, OSError):
        return os_error_line(error)
    if type(error).__name__ in ("DatasetGenerationError", "DatasetGenerationCastError"):
        cause = error.__cause__ or error.__context__
        return f"reading the data failed: {expected_error(cause) or one_line(cause)}" if cause else one_line(error)
    if isinstance(error, torch.OutOfMemoryError):
        return ("out of device memory: " + _first_line(str(error)) +
                "; lower --data.init_args.batch_size or the model size, or use --trainer.precision bf16-mixed")
    if isinstance(error, RuntimeError) and _DEVICE_FAULT.search(str(error)):
        return f"device: {_first_line(str(error))}"
    return None


_DEVICE_FAULT = re.compile(r"CUDA|cuda|NVIDIA driver|device type at start of device string|Invalid device|"
                           r"not compiled with|No .*GPUs? (are|is) available|MPS", re.IGNORECASE)


def os_error_line(error: OSError) -> str:
    """An ``OSError`` as one line: what happened to which file (``FileWriteError`` says it already)."""
    from zoo.files import FileWriteError, reason

    if isinstance(error, FileWriteError) or not error.filename:
        return one_line(error)
    where = error.filename if not error.filename2 else f"{error.filename} -> {error.filename2}"
    return f"{where}: {reason(error)}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def die_with_parent() -> None:
    """A DDP worker process (started by the launching rank) ends when the launching process dies —
    even by SIGKILL — instead of waiting in a collective until its timeout (Linux only)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def one_line(error: BaseException) -> str:
    """The root cause of ``error`` in one line. jsonargparse wraps a config's own ValueError in
    "Does not validate against any of the Union subtypes"; the useful part is the innermost cause,
    an unknown option with the valid ones, a YAML syntax error with its line, or the
    'Parser key "x": Expected ...' pair of a type error."""
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    for link in chain:
        if isinstance(link, yaml.MarkedYAMLError):
            return yaml_error(link)
    unknown = _unknown_option(chain)
    if unknown:
        return unknown
    for link in chain:  # a value given for an argument the CLI fills from another (link_arguments)
        linked = _LINKED.search(str(link))
        if linked:
            source, target = linked.groups()
            return f"--{target} is set from --{source} (linked); set --{source} instead"
    for link in reversed(chain):  # the innermost, most specific key first
        lines = [line.strip(" -") for line in str(link).splitlines() if line.strip(" -")]
        for i, line in reversed(list(enumerate(lines))):
            if line.startswith("Parser key") and i + 1 < len(lines):
                return f"{line.removeprefix('Parser key ').rstrip(':')}: {lines[i + 1]}"
    lines = [line for line in str(chain[-1]).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(chain[-1]).__name__


def yaml_error(error: yaml.MarkedYAMLError, path: str | None = None) -> str:
    """``error`` in one line: where (file, line, column) and what."""
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown line"
    context = ""
    if error.context:
        at = f" at line {error.context_mark.line + 1}" if error.context_mark else ""
        context = f" ({error.context}{at})"
    problem = error.problem or error.context or "invalid YAML"
    return f"{path + ' ' if path else ''}{where}: YAML syntax error: {problem}{context}"


def _check_config_files(argv: list[str]) -> None:
    """Name the file and line of a YAML syntax error in a ``--config`` file (jsonargparse reads the
    text first and reports it as in "<unicode string>"), and refuse a value for a linked field."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # missing or unreadable: jsonargparse says so
        try:
            config = yaml.safe_load(text)
        except yaml.MarkedYAMLError as error:
            raise ValueError(yaml_error(error, path)) from None
        # A linked target in a file is overwritten by its source without a word (on the command line
        # jsonargparse refuses it): say so instead of writing last.ckpt somewhere else than asked.
        last = config.get("last_checkpoint") if isinstance(config, dict) else None
        if isinstance(last, dict) and "dirpath" in last:
            raise ValueError(f"{path}: last_checkpoint.dirpath is set from checkpoint.dirpath (linked); "
                             "set checkpoint.dirpath instead")


def _check_negative_values(argv: list[str]) -> None:
    """argparse reads a value such as ``-1e-3`` after a space as an option and then reports the
    option before it as missing its argument; say how to write it instead."""
    reads_as_number = getattr(argparse.ArgumentParser(), "_negative_number_matcher", re.compile(r"^-\d+$|^-\d*\.\d+$"))
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag.startswith("--") and "=" not in flag and _NEGATIVE.match(value) and not reads_as_number.match(value):
            raise ValueError(f"{flag} {value}: a negative number after a space reads as an option; "
                             f"write {flag}={value}")


_NEGATIVE = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)
_CLASS_PATH = re.compile(r"Problem with given class_path '([\w.]+)'")
_PARSER_KEY = re.compile(r'Parser key "([\w.]+)"')
_LINKED = re.compile(r"argument ([\w.]+) --> ([\w.]+): ")
_UNKNOWN_OPTIONS = (
    re.compile(r"unrecognized arguments: --([\w.]+)"),                           # command line
    re.compile(r"Group '([\w.]+)' does not accept option '(\w+)'"),              # YAML, nested
    re.compile(r"Option '([\w.]+)' is not accepted"),                            # either, top level
)


def _unknown_option(chain: list[BaseException]) -> str | None:
    """'model.init_args.config.num_layer: GPTConfig has no field ...; valid fields: ...' for an
    unknown option of a class given by ``class_path`` (task, its config dataclass, data module)."""
    texts = [str(link) for link in chain]
    class_path = next((m.group(1) for t in reversed(texts) if (m := _CLASS_PATH.search(t))), None)
    option = None
    for text in reversed(texts):
        for pattern in _UNKNOWN_OPTIONS:
            if found := pattern.search(text):
                option = ".".join(found.groups())
                break
        if option:
            break
    if not class_path or not option:
        return None
    try:
        target: Any = _import_class(class_path)
        *groups, name = option.split(".")
        for group in groups:
            target = _accepted(target)[group]
        valid = _accepted(target)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return None
    key = next((m.group(1) for t in texts if (m := _PARSER_KEY.search(t))), None)
    full = f"{key}.init_args.{option}" if key else option
    if isinstance(target, type) and issubclass(target, _config_base()):
        valid = {k: v for k, v in valid.items() if k not in _LINKED_FIELDS}  # filled in from the data
    close = difflib.get_close_matches(name, list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    kind = "field" if dataclasses.is_dataclass(target) else "argument"
    return f"{full}: {target.__name__} has no {kind} {name!r}{hint}; valid {kind}s: {', '.join(valid)}"


def _accepted(cls: type) -> dict[str, Any]:
    """Name -> type of what ``cls`` takes: a dataclass's fields, or its ``__init__`` parameters
    (following ``**kwargs`` to the base class, as jsonargparse does)."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return {f.name: hints.get(f.name) for f in dataclasses.fields(cls)}
    accepted: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        hints = typing.get_type_hints(init)
        params = list(inspect.signature(init).parameters.values())[1:]
        for param in params:
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                accepted.setdefault(param.name, hints.get(param.name))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return accepted


def _config_base() -> type:
    from zoo.models.config import TransformerConfig

    return TransformerConfig


def _import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


if __name__ == "__main__":
    main()
