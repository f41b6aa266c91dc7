"""A run is a directory: ``runs/<name>/version_<N>/`` holds everything one ``zoo fit`` made.

::

    runs/gpt_clm/version_3/
        config.yaml         the resolved config (``zoo fit --config`` it to retrain)
        run.json            command, commit, versions, data files (size, hash), start/end, status,
                            final metrics, checkpoints, and each resume
        tokenizer.model     the tokenizer (``tokenizer.json`` for the char one); checkpoints carry it too
        checkpoints/        last.ckpt (the newest state), best-<step>-<val_loss>.ckpt
        metrics.csv         every logged value by step (a resumed run appends to it)
        tensorboard/        when TensorBoard is installed
        predict/            ``zoo predict`` output per checkpoint, with the input text
        validate/, test/    ``zoo validate`` / ``zoo test`` metrics of this run's checkpoints

The name is the first ``--config`` file's stem (``--run.name`` overrides), the root ``runs/``
(``--trainer.default_root_dir`` moves it), the version a fresh ``version_<N>`` for a fresh run and the
newest one for ``--ckpt_path last``; ``--run.version`` names one and ``--run.dir`` gives the whole
directory. ``--checkpoint.dirpath`` still moves the checkpoints alone.

Two processes never write one run directory: ``zoo fit`` holds a lock on ``<dir>/.lock`` for its
lifetime (released by the kernel however the process ends), and a second one refuses in one line.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

from zoo.checkpoints import RUN_FILE, VERSION, newest_checkpoint, versions
from zoo.files import atomic_write, file_identity, remove_stale_temporaries

RUNS_ROOT = "runs"
LOCK_FILE = ".lock"
#: ``--ckpt_path`` keywords the zoo resolves within the run: the newest checkpoint, or (second) a fresh
#: start when the run has none yet.
RESUME_KEYWORDS = ("last", "last_or_new")
#: Set by the launching process, read by DDP worker processes (which re-run the command line): all
#: ranks of one run write one directory.
RUN_DIR_ENV = "ZOO_RUN_DIR"


class RunError(ValueError):
    """A run directory that cannot be used as asked (one line: the directory, why, what to do)."""


# ---------------------------------------------------------------------------------------------
# Where a run goes


@dataclass(frozen=True)
class RunPlan:
    """Where a command's run lives and which checkpoint it starts from.

    Attributes:
        dir: The run directory.
        checkpoint: The checkpoint ``--ckpt_path last`` resolved to (None: as given, or none).
        resumed: Whether a ``fit`` continues this directory's own run.
    """

    dir: Path
    checkpoint: Path | None = None
    resumed: bool = False


def new_version(base: Path) -> Path:
    """Create and return the next ``version_<N>`` under ``base`` (``mkdir`` decides between two runs
    started at the same moment: the loser takes the next number)."""
    existing = next((p for p in (base, *base.parents) if p.exists()), Path("."))
    base.mkdir(parents=True, exist_ok=True)
    number = (versions(base) or [-1])[-1] + 1
    while True:
        path = base / f"version_{number}"
        try:
            path.mkdir()
            _CREATED.append((path, existing))
            return path
        except FileExistsError:
            number += 1


def run_of_checkpoint(path: Path) -> Path | None:
    """The run directory holding checkpoint ``path`` (``<run>/checkpoints/x.ckpt``), if it is in one."""
    parent = path.resolve().parent
    return parent.parent if parent.name == "checkpoints" and (parent.parent / RUN_FILE).is_file() else None


def plan_run(
    subcommand: str,
    *,
    name: str,
    root: Path,
    version: str | None,
    run_dir: Path | None,
    ckpt_path: str | None,
    checkpoint_dir: Path | None,
) -> RunPlan:
    """Decide the run directory of ``subcommand`` and resolve ``--ckpt_path last`` / ``last_or_new``.

    Args:
        subcommand: fit, validate, test or predict.
        name: The run's name (``runs/<name>/...``).
        root: Where named runs live.
        version: An explicit version directory name, or None.
        run_dir: An explicit run directory, or None.
        ckpt_path: ``--ckpt_path`` as given.
        checkpoint_dir: ``--checkpoint.dirpath`` when set explicitly, else None (``<run>/checkpoints``).

    Raises:
        RunError: Nothing to resume, or a fresh run into a directory that holds one already.
    """
    keyword = ckpt_path if ckpt_path in RESUME_KEYWORDS else None
    inherited = os.environ.get(RUN_DIR_ENV) if _is_worker() else None
    version = version or launcher_version()
    if run_dir is None and inherited:
        run_dir = Path(inherited)
    base = root / name
    if run_dir is not None:
        directory = run_dir
    elif version is not None:
        directory = base / version
    elif ckpt_path and keyword is None and run_of_checkpoint(Path(ckpt_path)) is not None:
        directory = run_of_checkpoint(Path(ckpt_path))
    elif keyword is not None and versions(base):
        directory = base / f"version_{versions(base)[-1]}"
    elif keyword == "last" and checkpoint_dir is None:
        raise RunError(f"--ckpt_path last: there is no run named {name!r} under {root}/ to resume; start it "
                       "without --ckpt_path (or with --ckpt_path last_or_new, which starts fresh when there is "
                       "nothing to resume), or name the run with --run.name / --run.dir")
    else:
        directory = None  # a fresh version, created below once nothing can fail any more
    checkpoints = checkpoint_dir or (directory / "checkpoints" if directory is not None else None)
    checkpoint = None
    if keyword is not None and checkpoints is not None:
        newest = newest_checkpoint(checkpoints)
        unreadable = sorted(checkpoints.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns) \
            if checkpoints.is_dir() else []
        if newest is not None:
            checkpoint = newest[0]
        elif unreadable:  # never start over beside them: the loader's checks say why the newest fails, in one line
            checkpoint = unreadable[-1]
        elif keyword == "last":
            raise RunError(f"--ckpt_path last: {checkpoints} holds no checkpoint to resume (the run was stopped "
                           "before its first save); start again without --ckpt_path, or pass --ckpt_path "
                           "last_or_new to start fresh when there is nothing to resume")
    if subcommand == "fit" and keyword is None and not ckpt_path and inherited is None and checkpoints is not None \
            and (held := newest_checkpoint(checkpoints)) is not None:
        raise RunError(f"{checkpoints} holds the checkpoints of a run already ({held[0].name} at step {held[1]}); "
                       "resume it with --ckpt_path last, or start a new run elsewhere (another --run.dir, "
                       "--run.version or --checkpoint.dirpath, or none of them for a fresh version)")
    if directory is None:
        directory = new_version(base)
    resumed = subcommand == "fit" and (checkpoint is not None or (ckpt_path is not None and keyword is None
                                                                   and run_of_checkpoint(Path(ckpt_path)) == directory))
    return RunPlan(directory, checkpoint, resumed)


def _is_worker() -> bool:
    """A process other than the run's first (a DDP rank started by Lightning, torchrun or srun)."""
    return any(os.environ.get(name, "0") != "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def launcher_version() -> str | None:
    """The version every process of a multi-process launch agrees on without talking: SLURM's job id
    (a requeued job keeps it) or torchrun's run id; None for a launch by one process (Lightning's own
    DDP launcher passes the directory to the processes it starts)."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
        return f"slurm-{job}" if job else None
    if os.environ.get("TORCHELASTIC_RUN_ID") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}"
    return None


# ---------------------------------------------------------------------------------------------
# One writer per directory


_HELD: dict[Path, Any] = {}  # run directory -> open lock file, held until the process ends


def lock_run(directory: Path) -> None:
    """Hold ``<directory>/.lock`` for the rest of this process; refuse in one line when another
    process holds it. ``flock`` locks die with their process, so a killed run never leaves a stale one."""
    directory = directory.resolve()
    if directory in _HELD or _is_worker():
        return
    if not directory.exists():
        _CREATED.append((directory, next((p for p in directory.parents if p.exists()), Path("/"))))
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"run directory {directory} is in use by {holder}; wait for it to end, or write this run "
                       "elsewhere (--run.dir, --run.version)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
    handle.flush()
    _HELD[directory] = handle


# Run directories this process created, each with the nearest ancestor that existed before.
_CREATED: list[tuple[Path, Path]] = []


def discard_unused_runs() -> None:
    """Remove the run directories this process created that hold nothing yet (a command that failed
    before its run began leaves no empty ``version_<N>`` behind), and the parents it created for them."""
    while _CREATED:
        directory, existed = _CREATED.pop()
        if (directory / RUN_FILE).exists():
            continue
        release_run(directory)
        with contextlib.suppress(OSError):
            (directory / LOCK_FILE).unlink(missing_ok=True)
            path = directory.absolute()
            stop = existed.absolute()
            while path != stop and stop in path.parents and path.exists() and not any(path.iterdir()):
                path.rmdir()
                path = path.parent


def release_runs() -> None:
    """Give up every run directory lock this process holds (its command is over)."""
    for directory in list(_HELD):
        release_run(directory)
    _CREATED.clear()


def release_run(directory: Path) -> None:
    """Give up the lock on ``directory`` (a second run in the same process, as in tests)."""
    handle = _HELD.pop(directory.resolve(), None)
    if handle is not None:
        handle.close()


# ---------------------------------------------------------------------------------------------
# What run.json records


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the zoo checkout (with ``+dirty`` for uncommitted changes); None outside git."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if commit and dirty else (commit or None)


def data_files(datamodule: Any) -> list[dict[str, Any]]:
    """The local files a data module reads, with their identity (empty for built-in data)."""
    files = getattr(datamodule, "_files", None) or {}
    found = []
    for split, paths in sorted(files.items()):
        for path in paths:
            with contextlib.suppress(OSError):
                found.append({"split": split, **file_identity(path)})
    return found


def versions_of_libraries() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for package in ("zoo", "torch", "lightning", "transformers", "datasets", "sentencepiece"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def read_run(directory: Path) -> dict[str, Any]:
    """``run.json`` of ``directory`` (empty when missing or unreadable)."""
    try:
        return json.loads((directory / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_run(directory: Path, record: Mapping[str, Any]) -> None:
    atomic_write(directory / RUN_FILE, json.dumps(record, indent=2, default=str) + "\n", what="run record")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


# ---------------------------------------------------------------------------------------------
# The callback


class RunDirectory(Callback):
    """Keeps a run's directory (the ``run`` group of ``zoo fit``): ``run.json`` at the start, after
    each checkpoint and at the end (status ``running`` → ``finished`` / ``stopped`` / ``failed``), the
    tokenizer beside the checkpoints, stale temporary files of killed saves removed, and a last line
    saying where everything went. The CLI resolves the directory before anything is built.

    Args:
        name: The run's name: ``runs/<name>/version_<N>``; default the first ``--config`` file's stem.
        version: A version directory to use instead of a fresh ``version_<N>`` (or the newest, with
            ``--ckpt_path last``).
        dir: The run directory itself (overrides name and version).
    """

    def __init__(self, name: str | None = None, version: str | None = None, dir: str | None = None) -> None:  # noqa: A002
        self.name, self.version, self.dir = name, version, dir
        # Set by the CLI once the config is final: whether this fit continues the directory's run, the
        # config as given (written to config.yaml) and as it runs (recorded in every checkpoint).
        self.resumed = False
        self.given_config: str | None = None
        self.ckpt_path: str | None = None
        self.effective_config: str | None = None
        self.command = [Path(sys.argv[0]).name, *sys.argv[1:]]
        self._started = 0.0

    @property
    def path(self) -> Path | None:
        return None if self.dir is None else Path(self.dir)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.path is None or not trainer.is_global_zero:
            return
        self._started = time.monotonic()
        record = read_run(self.path)
        now = _now()
        event = {"command": self.command, "start": now, "commit": git_commit(), "ckpt_path": self.ckpt_path}
        if not (self.resumed and record):
            record = {**record, "name": self.path.parent.name if VERSION.match(self.path.name) else self.path.name,
                      "dir": os.fspath(self.path), "subcommand": stage, "start": now, **event,
                      "host": socket.gethostname(), "versions": versions_of_libraries()}
        else:
            record.setdefault("resumes", []).append(event)
        datamodule = trainer.datamodule
        if datamodule is not None:
            record["data"] = {"module": type(datamodule).__name__, "files": data_files(datamodule)}
            tokenizer = getattr(datamodule, "tokenizer", None)
            if stage == "fit" and tokenizer is not None and hasattr(tokenizer, "to_bytes"):
                target = self.path / tokenizer.filename
                if not (target.is_file() and target.read_bytes() == tokenizer.to_bytes()):
                    tokenizer.save(target)
                record["tokenizer"] = {"file": tokenizer.filename, "fingerprint": tokenizer.fingerprint,
                                       "vocab_size": tokenizer.vocab_size}
        record.update(status="running", pid=os.getpid(), end=None)
        if self.given_config is not None and not (self.resumed and (self.path / "config.yaml").is_file()):
            atomic_write(self.path / "config.yaml", self.given_config, what="run config")
        for directory in {self.path / "checkpoints", *(Path(c.dirpath) for c in trainer.checkpoint_callbacks
                                                        if getattr(c, "dirpath", None))}:
            for stale in remove_stale_temporaries(directory):
                rank_zero_info(f"removed {stale}, left by a save that was killed")
        write_run(self.path, record)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.path is not None:
            checkpoint["zoo_run"] = {"dir": os.fspath(self.path), "config": self.effective_config}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.resumed and trainer.is_global_zero:  # the steps after the checkpoint are redone: their old rows go
            for logger in trainer.loggers:
                if isinstance(logger, RunCSVLogger):
                    logger.keep_until(trainer.global_step)

    def _finish(self, trainer: L.Trainer, status: str, error: BaseException | None = None) -> None:
        if self.path is None or not trainer.is_global_zero:
            return
        record = read_run(self.path)
        metrics = {k: _plain(v) for k, v in trainer.callback_metrics.items()}
        checkpoints = {}
        for callback in trainer.checkpoint_callbacks:
            for attribute in ("best_model_path", "last_model_path"):
                value = getattr(callback, attribute, "")
                if value and Path(value).is_file():
                    checkpoints[Path(value).name] = os.fspath(value)
        record.update(status=status, end=_now(), global_step=trainer.global_step, final_metrics=metrics,
                      seconds=round(time.monotonic() - self._started, 1))
        if checkpoints:
            record["checkpoints"] = checkpoints
        if error is not None:
            record["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
        with contextlib.suppress(OSError):
            write_run(self.path, record)
        last = next((p for n, p in checkpoints.items() if n.startswith("last")), None)
        # The step last.ckpt holds (LastCheckpoint.saved): behind the run's after a NaN stopped it mid-step.
        saved = next((c.saved[1] for c in trainer.checkpoint_callbacks
                      if last and getattr(c, "saved", None) and Path(c.saved[0]).name == Path(last).name),
                     trainer.global_step)
        where = f"; resume with --ckpt_path last ({Path(last).name} at step {saved})" \
            if last and status != "finished" else (f"; last checkpoint {last}" if last else "")
        if trainer.state.fn == "fit":
            rank_zero_info(f"Run directory: {self.path} ({status}, step {trainer.global_step}){where}")
        else:
            rank_zero_info(f"Outputs of zoo {trainer.state.fn}: {self.path}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, "finished")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" and not trainer.sanity_checking:
            self._finish(trainer, "finished")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, "finished")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, "finished")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        stopped = isinstance(exception, (SIGTERMException, KeyboardInterrupt))
        self._finish(trainer, "stopped" if stopped else "failed", None if stopped else exception)


# ---------------------------------------------------------------------------------------------
# Metrics that survive a resume


class RunCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` writing ``metrics.csv`` straight into the run directory
    (``save_dir``), where a resumed run appends — Lightning's deletes the file it finds — after
    dropping the rows of steps the checkpoint does not hold (the resumed run redoes them). A header
    change rewrites the file atomically.

    Args:
        save_dir: The directory of ``metrics.csv`` (the CLI sets it to the run directory).
    """

    def __init__(self, save_dir: str = RUNS_ROOT) -> None:
        super().__init__(save_dir=save_dir, name="", version="")

    @property
    def log_dir(self) -> str:
        return self.save_dir

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def keep_until(self, step: int) -> None:
        """Drop the rows logged after ``step`` (a resume from a checkpoint at ``step``)."""
        self.experiment.keep_until(step)


class _AppendingWriter:
    """``metrics.csv`` appended to across resumes (see ``RunCSVLogger``)."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, "metrics.csv")
        self.metrics: list[dict[str, Any]] = []
        self.metrics_keys: list[str] = []
        os.makedirs(log_dir, exist_ok=True)
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])

    def log_hparams(self, params: dict[str, Any]) -> None:
        pass  # the run's config.yaml holds them

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        metrics = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics_dict.items()}
        metrics["step"] = len(self.metrics) if step is None else step
        self.metrics.append(metrics)

    def _rows(self) -> list[dict[str, str]]:
        if not os.path.isfile(self.metrics_file_path):
            return []
        with open(self.metrics_file_path, newline="") as file:
            return list(csv.DictReader(file))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.metrics_file_path, text.getvalue(), what="metrics file")

    def keep_until(self, step: int) -> None:
        rows = self._rows()
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) <= step]
        if len(kept) != len(rows):
            self._rewrite(kept)

    def save(self) -> None:
        if not self.metrics:
            return
        new = sorted(set().union(*self.metrics) - set(self.metrics_keys))
        exists = os.path.isfile(self.metrics_file_path)
        if new:
            self.metrics_keys = sorted(self.metrics_keys + new)
            if exists:
                self._rewrite(self._rows())
        with open(self.metrics_file_path, "a" if exists else "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            if not exists:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []


# ---------------------------------------------------------------------------------------------
# What a resume may change


#: Settings that do not change what is computed: a resume takes the new value without a word.
_SILENT = ("ckpt_path", "config", "run.", "trainer.logger", "trainer.callbacks", "trainer.enable_",
           "trainer.default_root_dir", "trainer.log_every_n_steps", "trainer.val_check_interval",
           "trainer.check_val_every_n_epoch", "trainer.limit_val_batches", "trainer.limit_test_batches",
           "trainer.limit_predict_batches", "trainer.num_sanity_val_steps", "trainer.profiler", "trainer.plugins",
           "checkpoint.", "last_checkpoint.", "lr_monitor.", "prediction_writer.", "speed_monitor.",
           "data.init_args.num_workers", "data.init_args.cache_dir", "data.init_args.tokenizer_path",
           "model.init_args.pretrained")
#: What the model and data are: a resume that changes them is not a resume, and is refused.
_REFUSED = ("model.class_path", "model.init_args.config.", "model.init_args.adapter", "model.init_args.freeze",
            "model.init_args.optimizer",  # the saved optimizer state is another optimizer's
            "model.init_args.labels", "model.init_args.num_labels", "model.init_args.pooling",
            "data.class_path", "data.init_args.")
#: ... except these, which change how, not what, it trains.
_APPLIED_ANYWAY = ("model.init_args.config.dropout", "model.init_args.config.attn_implementation",
                   "data.init_args.batch_size")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def _starts(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p.rstrip(".") or key.startswith(p) for p in prefixes)


def _same(key: str, before: Any, now: Any) -> bool:
    """Equal settings; two class paths are equal when they name the same class (``zoo.tasks.CausalLM``
    and ``zoo.tasks.objectives.CausalLM``)."""
    if before == now:
        return True
    if key.endswith("class_path") and isinstance(before, str) and isinstance(now, str):
        import importlib

        try:
            classes = [getattr(importlib.import_module(module), name)
                       for module, _, name in (p.rpartition(".") for p in (before, now))]
        except (ImportError, AttributeError, ValueError):
            return False
        return classes[0] is classes[1]
    return False


def resume_changes(checkpoint: Mapping[str, Any], config_text: str, name: str) -> dict[str, Any]:
    """Check a resumed ``fit``'s config against the one the checkpoint was trained with.

    A changed model shape, task or data set is refused in one line naming the field (to train these
    weights differently, start from them with ``pretrained``). A changed learning rate, schedule,
    step budget, batch size or precision is applied, and one line says so and that the run is then
    no longer an exact continuation. Logging, checkpointing and worker settings change silently.

    Returns:
        The model's ``init_args`` to apply over the checkpoint's hyper-parameters.

    Raises:
        RunError: A change that a resume cannot make.
    """
    import yaml

    now = _flat(yaml.safe_load(config_text) or {})
    saved_text = (checkpoint.get("zoo_run") or {}).get("config")
    if isinstance(saved_text, str):
        before = _flat(yaml.safe_load(saved_text) or {})
    else:  # a checkpoint without its run's config: what its hyper-parameters say of the model
        before = _flat({"model": {"init_args": checkpoint.get("hyper_parameters", {})}})
        now = {k: v for k, v in now.items() if k.startswith("model.init_args.") and k in before and v is not None}
    if now.get("model.init_args.pretrained") or before.get("model.init_args.pretrained"):
        # A fine-tune's architecture comes from its pretrained weights, not from the YAML's config fields.
        now = {k: v for k, v in now.items()
               if not k.startswith("model.init_args.config.") or _starts(k, _APPLIED_ANYWAY)}
    changed = {k: (before[k], v) for k, v in now.items()
               if k in before and not _same(k, before[k], v) and not _starts(k, _SILENT)}
    refused = [k for k in changed if _starts(k, _REFUSED) and not _starts(k, _APPLIED_ANYWAY)]
    if refused:
        key = refused[0]
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:])})" if len(refused) > 1 else ""
        what = "data" if key.startswith("data.") else "model"
        raise RunError(f"--ckpt_path {name}: cannot resume with {key}={changed[key][1]!r}: the checkpoint was "
                       f"trained with {changed[key][0]!r}{more}, and a resume continues the same {what}; to train "
                       f"these weights with it, start a new run from them with --model.init_args.pretrained {name}")
    prefix = "model.init_args."
    if changed:
        details = ", ".join(f"{k.removeprefix(prefix)}={v!r} (was {b!r})" for k, (b, v) in changed.items())
        if not _is_worker():
            print(f"zoo: warning: resuming {name} with {details}: applied, so the run is no longer an exact "
                  "continuation", file=sys.stderr, flush=True)
    applied: dict[str, Any] = {}
    for key, (_, value) in changed.items():
        if key.startswith(prefix):  # e.g. "lr", or "config.dropout" one level down
            *parents, leaf = key.removeprefix(prefix).split(".")
            target = applied
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
    return applied
