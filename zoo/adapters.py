"""Parameter-efficient fine-tuning through ``peft``: LoRA (Hu et al., 2021) and the other adapters
``peft`` injects into plain ``nn.Module``s (LoHa, LoKr, IA³), for every zoo family.

``apply_adapter(model, AdapterConfig(...))`` injects the adapter layers into a zoo model in place
(``peft.inject_adapter_in_model``), so the model keeps its class and its public methods, and freezes
every other weight of it. Checkpoints then hold the adapted modules under ``<name>.base_layer.*``
and ``<name>.lora_A.default.*``; a task that re-applies the same config before loading reloads them.
``merge_adapters(model)`` folds the adapters into the base weights (``peft``'s own merge) and puts the
plain modules back, giving a model with the original state-dict names that ``zoo.hf`` exports.

Target names are module names as ``peft`` matches them: a listed name matches a module called
that or ending in ``.<name>`` (``q_proj`` matches every layer's query projection); a single string is
a regular expression over full names. The zoo's attention names its projections ``q_proj``,
``k_proj``, ``v_proj`` and ``out_proj`` (``zoo/blocks/attention.py``), feed-forward blocks
``up_proj``, ``gate_proj`` and ``down_proj``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

AdapterMethod = Literal["lora", "loha", "lokr", "ia3"]
#: Modules an adapter can wrap: what ``peft``'s tuners accept and the zoo models contain.
ADAPTABLE = (nn.Linear, nn.Embedding)


@dataclass
class AdapterConfig:
    """An adapter to train instead of (or beside) the model's own weights.

    Args:
        method: ``lora``, ``loha``, ``lokr`` (``peft``'s low-rank tuners) or ``ia3`` (learned scales).
        rank: Rank ``r`` of the low-rank update (not used by ia3).
        alpha: Scaling numerator: the update is multiplied by ``alpha / rank`` (not used by ia3).
        dropout: Dropout on the adapter's input (lora) or rank dimension (loha, lokr).
        target_modules: Module names to adapt (see the module docstring), e.g. ``[q_proj, v_proj]``
            (the LoRA paper's choice) or ``[q_proj, k_proj, v_proj, out_proj, up_proj, down_proj]``.
        options: Further fields of the ``peft`` config class, passed as given (e.g. ``use_rslora:
            true`` or ``init_lora_weights: pissa`` for lora, ``feedforward_modules`` for ia3).
    """

    method: AdapterMethod = "lora"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ("lora", "loha", "lokr", "ia3"):
            raise ValueError(f"adapter.method={self.method!r} must be one of lora, loha, lokr, ia3")
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"adapter: rank={self.rank} must be >= 1, alpha={self.alpha} > 0 and dropout="
                             f"{self.dropout} in [0, 1)")
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if not self.target_modules:
            raise ValueError("adapter.target_modules is empty; name the modules to adapt, e.g. [q_proj, v_proj]")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for checkpoints that load with ``torch.load(weights_only=True)``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: AdapterConfig | Mapping[str, Any] | None) -> AdapterConfig | None:
        if value is None or isinstance(value, AdapterConfig):
            return value
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(f"adapter: unknown field(s) {unknown}; fields are {fields}")
        return cls(**dict(value))

    def peft_config(self) -> Any:
        """The ``peft`` config object of this adapter."""
        import peft

        targets = list(self.target_modules)
        if self.method == "lora":
            values = dict(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout)
            config_class = peft.LoraConfig
        elif self.method in ("loha", "lokr"):
            values = dict(r=self.rank, alpha=self.alpha, rank_dropout=self.dropout)
            config_class = peft.LoHaConfig if self.method == "loha" else peft.LoKrConfig
        else:  # IA³ scales the input of feed-forward output projections and the output of the rest
            values = dict(feedforward_modules=[t for t in targets if t in ("down_proj",)])
            config_class = peft.IA3Config
        try:
            return config_class(target_modules=targets, **{**values, **self.options})
        except (TypeError, ValueError) as error:
            raise ValueError(f"adapter.options {self.options}: {str(error).splitlines()[0]}") from None


def matches(name: str, targets: list[str]) -> bool:
    """Whether ``peft`` would adapt the module called ``name`` (its suffix rule for lists)."""
    return any(name == t or name.endswith(f".{t}") for t in targets)


def adaptable_names(model: nn.Module) -> list[str]:
    """Distinct short names (last path component) of the modules an adapter can wrap."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, ADAPTABLE) and name})


def check_targets(model: nn.Module, targets: list[str]) -> None:
    """Refuse, in one line listing the names that exist, targets that match no adaptable module."""
    names = [name for name, m in model.named_modules() if isinstance(m, ADAPTABLE) and name]
    unmatched = [t for t in targets if not any(matches(n, [t]) or re.fullmatch(t, n) for n in names)]
    if unmatched:
        raise ValueError(f"adapter.target_modules {unmatched} match no module of this {type(model).__name__}; "
                         f"its linear and embedding modules are {adaptable_names(model)}")


def apply_adapter(model: nn.Module, config: AdapterConfig) -> nn.Module:
    """Inject ``config``'s adapter into ``model`` in place and freeze everything else in it.

    Returns:
        ``model`` itself, its targeted modules wrapped by ``peft`` layers; only adapter weights train.
    """
    import peft

    check_targets(model, list(config.target_modules))
    return peft.inject_adapter_in_model(config.peft_config(), model)


def _tuner_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every ``peft`` adapter layer in ``model``; none without ``peft`` installed
    (nothing can have injected one), so plain models need no ``peft`` to generate or export."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return []
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def has_adapters(model: nn.Module) -> bool:
    return bool(_tuner_layers(model))


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weights (``peft``'s ``merge``) and put the plain base module
    back in its place, in place: the result has the original modules and state-dict names, and
    computes what the adapted model computed (up to float rounding)."""
    for name, module in _tuner_layers(model):
        module.merge()
        parent_name, _, child = name.rpartition(".")
        base = module.get_base_layer()
        base.requires_grad_(True)
        setattr(model.get_submodule(parent_name) if parent_name else model, child, base)
    return model


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameters of ``module``, shared (tied) tensors counted once."""
    params = {id(p): p for p in module.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
