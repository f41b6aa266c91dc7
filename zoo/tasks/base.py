"""``LanguageModelTask``: what the three objectives share — loss, torchmetrics per stage, the
optimizer (AdamW with decoupled weight decay, or Muon: ``zoo.tasks.optimizers``), warmup + cosine
schedule, and checkpoint checks.

Subclasses (``MaskedLM``, ``CausalLM``, ``Seq2SeqLM``) say which model they build and how a batch
becomes ``(logits, labels)``; everything else lives here, in one ``_shared_step(batch, stage)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from zoo.checkpoints import TASK_KEY, CheckpointError, check_tokenizer, load_checkpoint, run_checkpoint, task_class
from zoo.data.tokenizers import Tokenizer
from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig
from zoo.models.registry import Family, family_of
from zoo.tasks.losses import token_cross_entropy
from zoo.tasks.metrics import BitsPerByte
from zoo.tasks.optimizers import (
    MuonConfig,
    OptimizerName,
    build_optimizer,
    check_optimizer,
    fused_adamw,
    parameter_groups,
)

IGNORE_INDEX = -100  # label value the loss and metrics skip (PyTorch's and Hugging Face's convention)
Stage = Literal["train", "val", "test"]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine decay to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_with_schedule(
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float],
    warmup_steps: int,
    total_steps: int | Callable[[], int] | None,
    min_lr_ratio: float,
    eps: float = 1e-8,
) -> dict[str, Any]:
    """AdamW and a per-step linear warmup, then cosine decay to ``min_lr_ratio``·lr over
    ``total_steps`` (None = constant after warmup), as Lightning's ``configure_optimizers`` returns.
    ``total_steps`` may be a function, called once, at the first step past warmup."""
    return with_schedule(fused_adamw(groups, lr=lr, betas=betas, eps=eps), warmup_steps=warmup_steps,
                         total_steps=total_steps, min_lr_ratio=min_lr_ratio)


def with_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    total_steps: int | Callable[[], int] | None,
    min_lr_ratio: float,
) -> dict[str, Any]:
    """``optimizer`` with the schedule of ``adamw_with_schedule`` over every group's own rate."""
    resolved: list[int] = []

    def schedule(step: int) -> float:
        if total_steps is None or step <= warmup_steps:  # the total matters only after warmup
            return min(1.0, (step + 1) / max(1, warmup_steps))
        if not resolved:
            resolved.append(int(total_steps() if callable(total_steps) else total_steps))
        return warmup_cosine(step, warmup_steps, resolved[0], min_lr_ratio)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def configure_fused_gradient_clipping(
    self: L.LightningModule,
    optimizer: torch.optim.Optimizer,
    gradient_clip_val: float | None = None,
    gradient_clip_algorithm: str | None = None,
) -> None:
    """``LightningModule.configure_gradient_clipping`` that also clips for the fused AdamW under
    mixed precision (bind it as that method).

    Lightning's mixed-precision plugin refuses to clip for any optimizer that unscales gradients in
    its own step, since a GradScaler's gradients are still scaled at clipping time. bf16 has no
    scaler: its gradients are true, and clipping them is what the non-fused optimizer got. With fp16's
    scaler they are unscaled first, which the fused step sees and does not repeat.
    """
    plugin = self.trainer.precision_plugin
    if gradient_clip_val and isinstance(plugin, MixedPrecision) and optimizer.defaults.get("fused"):
        if plugin.scaler is not None:
            plugin.scaler.unscale_(optimizer)
        Precision.clip_gradients(plugin, optimizer, gradient_clip_val,
                                 GradClipAlgorithmType(gradient_clip_algorithm or "norm"))
        return
    self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)


class LanguageModelTask(L.LightningModule):
    """Base LightningModule of the zoo's objectives (not used directly).

    Args:
        config: The model architecture (a family config dataclass, or its ``to_dict()``).
        lr: Peak learning rate of AdamW (with Muon: of the parameters AdamW trains). Under μP
            (``config.parametrization: mup``) the rate at base width; the hidden matrices' own
            follows the optimizer's μP rule (``zoo.tasks.optimizers``).
        weight_decay: Decoupled weight decay of matrix weights; norms, biases and embeddings get none.
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_steps: Linear warmup steps.
        scheduler: ``cosine`` (decay to ``min_lr_ratio``·lr over the run) or ``constant`` after warmup.
        min_lr_ratio: Final learning rate as a fraction of ``lr`` (cosine).
        max_steps: Length of the cosine schedule; null = the Trainer's estimated total steps.
        pretrained: Initial weights: a zoo checkpoint (``.ckpt``) or a Hugging Face directory
            (``save_pretrained`` output); its architecture must match ``config``. Not saved in
            checkpoints: a resumed or reloaded run takes its weights from the checkpoint itself.
        optimizer: ``adamw`` (fused AdamW for every weight) or ``muon`` (Muon for the hidden
            matrices of attention and feed-forward, AdamW for the rest; ``configs/optim/muon.yaml``).
        muon: Muon's settings (``zoo.tasks.optimizers.MuonConfig``: lr, weight_decay, momentum,
            nesterov, ns_steps, adjust_lr_fn); null = its defaults. Only with ``optimizer: muon``.
    """

    family: ClassVar[Family]  # from zoo.models.registry; model_class and config_class follow from it
    model_class: ClassVar[type[ZooModel]]
    config_class: ClassVar[type[TransformerConfig]]
    # Methods zoo.speed.CompileModel replaces on the instance with their torch.compile'd form: the
    # whole step (model, output head and loss) in one graph wherever the objective allows it.
    compile_units: ClassVar[tuple[str, ...]] = ("forward_loss",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            cls.model_class, cls.config_class = cls.family.model_class, cls.family.config_class

    def __init__(
        self,
        config: TransformerConfig,
        lr: float = 3e-4,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        warmup_steps: int = 100,
        scheduler: Literal["cosine", "constant"] = "cosine",
        min_lr_ratio: float = 0.1,
        max_steps: int | None = None,
        pretrained: str | None = None,
        optimizer: OptimizerName = "adamw",
        muon: MuonConfig | None = None,
    ):
        super().__init__()
        if isinstance(config, Mapping):  # from a checkpoint's plain hyper-parameters
            config = self.config_class.from_dict(dict(config))
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if lr <= 0 or warmup_steps < 0 or not 0 <= min_lr_ratio <= 1:
            raise ValueError(
                f"optimizer settings out of range: lr={lr} must be > 0, warmup_steps={warmup_steps} >= 0, "
                f"min_lr_ratio={min_lr_ratio} in [0, 1]"
            )
        muon = check_optimizer(optimizer, muon, config)
        self.save_hyperparameters(ignore=["config", "pretrained", "muon", "_class_path", "_instantiator"])
        # Plain values only, so checkpoints load with torch.load(weights_only=True) and
        # `SomeTask.load_from_checkpoint(path)` rebuilds the config from them.
        self.hparams["config"] = config.to_dict()
        self.hparams["muon"] = muon.to_dict() if muon is not None else None
        self.config = config
        self.model = self.model_class(config)
        if pretrained is not None:
            self._load_pretrained(str(pretrained))
        self.train_metrics, self.val_metrics, self.test_metrics = (self._make_metrics() for _ in range(3))

    def _load_pretrained(self, path: str) -> None:
        """Copy the weights of ``path`` into ``self.model``, refusing in one line a different family or
        architecture (before PyTorch's multi-line size-mismatch error)."""
        config, state = pretrained_weights(path, family=family_of(self.config_class))
        if type(config) is not self.config_class:  # a Hugging Face directory of another family
            raise CheckpointError(f"holds a {type(config).__name__} model; {type(self).__name__} needs a "
                                  f"{self.config_class.__name__}", path, "pretrained")
        theirs, mine = config.architecture(), self.config.architecture()
        differing = [k for k in mine if theirs.get(k) != mine[k]]
        if differing:
            details = ", ".join(f"{k}: pretrained {theirs.get(k)!r} vs config {mine[k]!r}" for k in differing)
            hint = " (the data's tokenizer must be the one the weights were trained with)" \
                if "vocab_size" in differing else ""
            raise CheckpointError(f"does not match the model config: {details}{hint}", path, "pretrained")
        self.model.load_state_dict(state)

    def _make_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "perplexity": Perplexity(ignore_index=IGNORE_INDEX),
            "accuracy": MulticlassAccuracy(self.config.vocab_size, average="micro", ignore_index=IGNORE_INDEX),
        })

    def logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(logits (b, t, v), labels (b, t))`` for the loss; subclasses define the objective."""
        raise NotImplementedError

    def sequence_logits_and_labels(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """As ``logits_and_labels``, with row i of both belonging to sequence i of the batch."""
        return self.logits_and_labels(batch)

    def forward_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, logits, labels)`` of a batch: the model, its output head and the loss — the whole
        of a step's model computation, which ``--compile.enabled`` compiles as one graph (on a CPU a
        vocabulary head left eager outside the compiled stacks ran its bf16 matmul 6x slower than
        inside a graph). The logits come back detached, for the metrics: an output that required
        grad would make the compiled backward take a zero gradient for all of them.
        """
        logits, labels = self.logits_and_labels(batch)
        # float32 loss without a float32 copy of the logits (zoo.tasks.losses: a third of a bf16 step).
        loss = token_cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        return loss, logits.detach(), labels

    def _shared_step(self, batch: Mapping[str, Tensor], stage: Stage) -> Tensor:
        loss, logits, labels = self.forward_loss(batch)
        batch_size = labels.shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=stage != "train",
                 batch_size=batch_size, sync_dist=stage != "train")
        # Training logs its loss only: perplexity's second softmax over the vocabulary and accuracy's
        # argmax cost a tenth of a step (torch.profiler); validation and test keep every metric.
        if stage != "train":
            metrics = getattr(self, f"{stage}_metrics")
            logits = logits.float()
            metrics["perplexity"].update(logits, labels)  # wants (b, t, v)
            metrics["accuracy"].update(logits.flatten(0, 1), labels.flatten())  # wants (n, v)
            if "bpb" in metrics:
                metrics["bpb"].update(logits, labels)
            self.log_dict({f"{stage}_{k}": v for k, v in metrics.items()}, on_step=False, on_epoch=True,
                          batch_size=batch_size)
        aux = self.model.aux_loss()  # mixture-of-experts load balancing, weighted; None without experts
        if aux is not None:
            self.log(f"{stage}_aux_loss", aux, on_step=stage == "train", on_epoch=stage != "train",
                     batch_size=batch_size, sync_dist=stage != "train")
            if stage == "train":  # {stage}_loss stays the cross-entropy, comparable across models
                loss = loss + aux
        return loss

    def setup(self, stage: str) -> None:
        """Refuse data longer than a learned position table before any step runs; add the metrics
        that need the data's tokenizer."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        data_len = getattr(datamodule, "max_seq_len", None)
        if data_len is not None:
            self.config.check_sequence_length(data_len, "data max_seq_len")
        tokenizer = getattr(datamodule, "tokenizer", None)
        if tokenizer is not None:
            for metrics in (self.val_metrics, self.test_metrics):
                metrics.update(self.text_metrics(tokenizer))

    def text_metrics(self, tokenizer: Tokenizer) -> dict[str, Metric]:
        """Validation and test metrics that read the data's tokenizer: bits per byte of the scored
        tokens (``zoo.tasks.metrics.BitsPerByte``: comparable across tokenizers)."""
        return {"bpb": BitsPerByte(tokenizer.token_byte_lengths())}

    def configure_model(self) -> None:
        """Shard with FSDP2 when the strategy provides a device mesh (``zoo.strategies.FSDP2``,
        ``configs/scale/fsdp.yaml``): each transformer layer is its own unit, gathered only while
        it runs, and the model root holds the rest (embeddings, tied head, final norm). Other
        strategies set no mesh, and nothing changes."""
        from torch.distributed.fsdp import FSDPModule, fully_shard

        from zoo.blocks.layers import EncoderLayer

        if self._device_mesh is None or isinstance(self.model, FSDPModule):  # not sharding, or done
            return
        mesh = self._device_mesh["data_parallel"]
        for module in self.model.modules():
            if isinstance(module, EncoderLayer):  # DecoderLayer included
                fully_shard(module, mesh=mesh)
        fully_shard(self.model, mesh=mesh)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Score each sequence of the batch: ``loss`` (mean cross-entropy over its scored tokens,
        nats), ``num_tokens`` (how many were scored) and ``num_correct`` (argmax hits), each ``(b,)``.
        A sequence with no scored token has loss NaN."""
        logits, labels = self.sequence_logits_and_labels(batch)
        scored = labels != IGNORE_INDEX  # (b, t)
        nll = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (b, t), 0 where ignored
        num_tokens = scored.sum(dim=1)
        correct = (logits.argmax(dim=-1) == labels) & scored
        return {"loss": nll.sum(dim=1) / num_tokens, "num_tokens": num_tokens, "num_correct": correct.sum(dim=1)}

    def parameter_groups(self, module: nn.Module | None = None) -> list[dict[str, Any]]:
        """The optimizer's parameter groups over ``module`` (default: the model; fine-tuning adds its
        head): ``zoo.tasks.optimizers.parameter_groups``."""
        h = self.hparams
        return parameter_groups(module if module is not None else self.model, self.model, optimizer=h.optimizer,
                                lr=h.lr, weight_decay=h.weight_decay, muon=MuonConfig.from_value(h.muon))

    configure_gradient_clipping = configure_fused_gradient_clipping  # fused AdamW with bf16-mixed + clipping

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        # The Trainer's estimate is read at the first step past warmup, not here: read in
        # configure_optimizers, it sets up the train loader before a resumed run restores the loader's
        # position, which Lightning then drops (Lightning issue #20550): the epoch would start over.
        total = None if h.scheduler == "constant" else h.max_steps or (
            lambda: int(self.trainer.estimated_stepping_batches))
        optimizer = build_optimizer(self.parameter_groups(), h.optimizer, lr=h.lr, betas=h.betas, eps=h.eps,
                                    muon=MuonConfig.from_value(h.muon))
        return with_schedule(optimizer, warmup_steps=h.warmup_steps, total_steps=total, min_lr_ratio=h.min_lr_ratio)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with one line naming the file, a checkpoint trained with another tokenizer than the
        data's, or whose architecture does not match this model — before any step, and before
        PyTorch's multi-line size-mismatch error."""
        path = self._trainer.ckpt_path if self._trainer is not None else None
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        fingerprint = getattr(datamodule, "tokenizer_fingerprint", None)
        if fingerprint is not None:
            check_tokenizer(checkpoint, fingerprint=fingerprint, vocab_size=datamodule.vocab_size, path=path,
                            what="ckpt_path", fix="pass its tokenizer with --data.init_args.tokenizer_path")
        saved = checkpoint.get("hyper_parameters", {}).get("config")
        if saved:
            _refuse_other_architecture(saved, self.config.to_dict(), path, "ckpt_path")
        apply_optimizer_changes(checkpoint, self.hparams)


    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> LanguageModelTask:
        """Lightning's ``load_from_checkpoint`` (same arguments; keyword arguments override saved
        hyper-parameters), with the zoo loader's checks first: a file that is not a checkpoint, needs
        unsafe unpickling, is not a zoo checkpoint or holds another family or task fails with one
        ``CheckpointError`` line naming it. ``weights_only=True`` always."""
        what = f"{cls.__name__}.load_from_checkpoint"
        needed = None if cls is LanguageModelTask else cls
        checkpoint = load_checkpoint(checkpoint_path, what=what, task=needed)
        target = cls if needed is not None else task_class(checkpoint)
        given = kwargs.get("config")
        if isinstance(given, (Mapping, TransformerConfig)):
            # Lightning writes given hyper-parameters over the saved ones before on_load_checkpoint sees them.
            mine = given.to_dict() if isinstance(given, TransformerConfig) else \
                target.config_class.from_dict(dict(given)).to_dict()
            _refuse_other_architecture(checkpoint["hyper_parameters"]["config"], mine, checkpoint_path, what)
        kwargs["weights_only"] = True
        try:
            return super(LanguageModelTask, target).load_from_checkpoint(
                checkpoint_path, map_location, hparams_file, strict, **kwargs)
        except CheckpointError as error:  # raised by on_load_checkpoint, which does not know the file
            raise error.at(checkpoint_path, what) from None
        except RuntimeError as error:  # PyTorch's multi-line load_state_dict errors
            raise CheckpointError(_state_dict_fault(error), checkpoint_path, what) from None


def apply_optimizer_changes(checkpoint: dict[str, Any], hparams: Mapping[str, Any]) -> None:
    """A resume that sets another learning rate, weight decay, betas or eps (``zoo.runs.resume_changes``)
    must get them: Lightning restores the optimizer's and scheduler's saved state, which holds the old
    ones. Rewrite that state in ``checkpoint`` before it is restored: rates scaled by new / old (so
    groups with their own multiples, μP's, keep them), decay set where it was on, betas and eps
    replaced. Muon's groups (``"optimizer": "muon"``) take the same from the ``muon`` settings."""
    old = checkpoint.get("hyper_parameters", {})
    if not all(k in old for k in ("lr", "weight_decay")):
        return
    settings = {"adamw": (old, hparams),
                "muon": (old.get("muon") or MuonConfig().to_dict(), hparams.get("muon") or MuonConfig().to_dict())}
    schedulers = checkpoint.get("lr_schedulers", [])
    for index, state in enumerate(checkpoint.get("optimizer_states", [])):
        ratios = []
        for group in state.get("param_groups", []):
            before, now = settings["muon" if group.get("optimizer") == "muon" else "adamw"]
            ratio = now["lr"] / before["lr"] if before["lr"] else 1.0
            ratios.append(ratio)
            for key in ("lr", "initial_lr"):
                if key in group and ratio != 1.0:
                    group[key] = group[key] * ratio
            if group.get("weight_decay") and now["weight_decay"] != before["weight_decay"]:
                group["weight_decay"] = now["weight_decay"]
            for key in ("betas", "eps", "momentum", "nesterov", "ns_steps", "adjust_lr_fn"):
                if key in group and key in now and key in before and now[key] != before[key]:
                    group[key] = tuple(now[key]) if key == "betas" else now[key]
        scheduler = schedulers[index] if index < len(schedulers) else {}
        for key in ("base_lrs", "_last_lr"):  # one entry per group, in the optimizer's order
            if key in scheduler and len(scheduler[key]) == len(ratios):
                scheduler[key] = [lr * ratio for lr, ratio in zip(scheduler[key], ratios, strict=True)]


def _refuse_other_architecture(saved: Mapping[str, Any], mine: Mapping[str, Any], path: Any, what: str) -> None:
    """One line naming every config field in which a checkpoint (``saved``) and the model differ."""
    runtime_only = ("dropout", "attn_implementation", "preset")  # may differ between training and evaluation
    differing = [k for k in mine if k in saved and saved[k] != mine[k] and k not in runtime_only]
    if differing:
        details = ", ".join(f"{k}: checkpoint {saved[k]!r} vs now {mine[k]!r}" for k in differing)
        hint = " (the data's tokenizer differs from the one the checkpoint was trained with; "\
               "pass its tokenizer with --data.init_args.tokenizer_path)" if "vocab_size" in differing else ""
        raise CheckpointError(f"does not match the model: {details}{hint}", path, what)


def _state_dict_fault(error: RuntimeError) -> str:
    """PyTorch's load_state_dict error (a header, then one line per tensor) as one line."""
    problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"its weights do not fit the model: {problems[0] if problems else _first(str(error))}{more}"


def _first(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def pretrained_weights(
    path: str, *, family: Family | None = None
) -> tuple[TransformerConfig, dict[str, Tensor]]:
    """The model config and state dict held by a zoo checkpoint or a Hugging Face model directory.

    Raises:
        CheckpointError: ``path`` is not a zoo checkpoint, or holds another ``family``'s model.
    """
    path = str(run_checkpoint(path, "pretrained"))
    if Path(path).is_dir():
        from zoo.hf import from_hf  # transformers is needed only here

        model = from_hf(path)
        return model.config, model.state_dict()
    checkpoint = load_checkpoint(path, what="pretrained", family=family)
    config = task_class(checkpoint).config_class.from_dict(dict(checkpoint["hyper_parameters"]["config"]))
    prefix = "model."
    state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    return config, state


def task_from_checkpoint(checkpoint: Mapping[str, Any], path: str, *, what: str = "checkpoint") -> LanguageModelTask:
    """The task of a checkpoint that ``zoo.checkpoints.load_checkpoint`` returned, weights loaded.

    Raises:
        CheckpointError: Its weights do not fit its own config (a damaged or hand-edited file).
    """
    task = task_class(checkpoint)(**checkpoint["hyper_parameters"])
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:  # PyTorch lists every mismatching tensor over many lines
        raise CheckpointError(_state_dict_fault(error), path, what) from None
    return task


def load_task(
    checkpoint_path: str, map_location: str | torch.device | None = "cpu", *, what: str = "checkpoint"
) -> LanguageModelTask:
    """Load any zoo task from a checkpoint, whichever family it holds (``model.eval()`` is up to you).

    Raises:
        CheckpointError: One line naming the file and the fault (see ``zoo.checkpoints``); ``what``
            names the argument that gave the file.
    """
    checkpoint = load_checkpoint(checkpoint_path, what=what, map_location=map_location)
    return task_from_checkpoint(checkpoint, checkpoint_path, what=what)
