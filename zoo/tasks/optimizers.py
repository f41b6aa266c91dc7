"""The optimizers of ``zoo fit``, chosen by name (``--model.init_args.optimizer``), their parameter
groups, and μP's learning rate per group.

- ``adamw`` (the default): fused AdamW, weight decay on matrix weights only (``decay_groups``).
- ``muon``: Muon (Jordan et al., 2024; ``torch.optim.Muon``) — momentum, then the update
  orthogonalised by a Newton-Schulz iteration — for the hidden matrices, and AdamW for everything
  else: embeddings, output heads, norms, biases, MoE routers and adapter weights, as Muon's authors
  prescribe (an embedding row or a head's readout is no linear map between hidden spaces). One
  ``MuonWithAdamW`` optimizer holds both, so Lightning's automatic optimization, gradient clipping,
  precision plugins, DDP and FSDP see one optimizer, and its state is one ordinary optimizer state
  dict in the checkpoint. ``configs/optim/muon.yaml`` switches any config over.

The hidden matrices are ``ZooModel.hidden_linears()``: each attention projection (q, k, v, out) and
feed-forward projection is its own ``nn.Linear``, so Muon orthogonalises each projection's update
on its own, as modded-nanogpt does per matrix (the zoo's attention never fuses the q/k/v weights; a
checkpoint of the fused ``qkv_proj`` layout is split on load).

Under μP (``parametrization: mup``) the hidden matrices' rate follows the optimizer's rule
(``MUP_HIDDEN_LR``): AdamW's per-coordinate step needs lr / width_mult (Yang et al., 2022, Table 3);
Muon's orthogonalised step, scaled by sqrt(max(1, fan_out / fan_in)), already has the spectral
size μP asks for at every width (Yang, Simon & Bernstein, 2023, "A Spectral Condition for Feature
Learning"), so its rate stays. Moonshot's ``match_rms_adamw`` scaling grows the step with
sqrt(max(fan_out, fan_in)) and has no rule here. Everything on AdamW keeps ``lr``: μP's output
multiplier sits in the forward pass (``zoo.models.mup``). Weight decay is PyTorch's decoupled one,
multiplied by each group's rate, as in the ``mup`` package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from zoo.models.base import ZooModel
from zoo.models.config import TransformerConfig

OptimizerName = Literal["adamw", "muon"]
OPTIMIZERS = ("adamw", "muon")


@dataclass
class MuonConfig:
    """Muon's settings for the hidden matrices (``optimizer: muon``); the rest trains with AdamW at
    the task's ``lr``, ``weight_decay``, ``betas`` and ``eps``. Defaults: Keller Jordan's Muon and
    nanochat's matrix rate.

    Args:
        lr: Peak learning rate of the hidden matrices (the task's warmup and schedule apply).
        weight_decay: Decoupled weight decay of the hidden matrices (multiplied by the rate).
        momentum: Momentum coefficient.
        nesterov: Nesterov momentum.
        ns_steps: Newton-Schulz iterations of the orthogonalisation.
        adjust_lr_fn: ``original`` (rate × sqrt(max(1, fan_out / fan_in)), Keller Jordan) or
            ``match_rms_adamw`` (rate × 0.2·sqrt(max(fan_out, fan_in)), Moonshot: AdamW-sized steps).
    """

    lr: float = 0.02
    weight_decay: float = 0.0
    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5
    adjust_lr_fn: Literal["original", "match_rms_adamw"] = "original"

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1 or self.ns_steps < 1:
            raise ValueError(f"muon: lr={self.lr} must be > 0, weight_decay={self.weight_decay} >= 0, momentum="
                             f"{self.momentum} in [0, 1) and ns_steps={self.ns_steps} >= 1")
        if self.adjust_lr_fn not in ("original", "match_rms_adamw"):
            raise ValueError(f"muon.adjust_lr_fn={self.adjust_lr_fn!r} must be 'original' or 'match_rms_adamw'")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for checkpoints that load with ``torch.load(weights_only=True)``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: MuonConfig | Mapping[str, Any] | None) -> MuonConfig | None:
        if value is None or isinstance(value, MuonConfig):
            return value
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(f"muon: unknown field(s) {unknown}; fields are {fields}")
        return cls(**dict(value))


def check_optimizer(optimizer: str, muon: MuonConfig | Mapping[str, Any] | None,
                    config: TransformerConfig) -> MuonConfig | None:
    """The Muon settings to use (defaults with ``optimizer: muon``), refusing in one line an unknown
    optimizer, Muon settings without Muon, or a μP model with an optimizer μP has no rule for."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} must be one of {list(OPTIMIZERS)}")
    muon = MuonConfig.from_value(muon)
    if muon is not None and optimizer != "muon":
        raise ValueError(f"muon settings are given but optimizer={optimizer!r}; set optimizer: muon "
                         "(configs/optim/muon.yaml) or drop them")
    if optimizer == "muon":
        if not hasattr(torch.optim, "Muon"):
            raise ValueError(f"optimizer='muon' needs torch.optim.Muon (PyTorch >= 2.9); this is torch "
                             f"{torch.__version__}")
        muon = muon or MuonConfig()
    hidden_lr_multiplier(config, optimizer, muon)
    return muon


def _adamw_rule(config: TransformerConfig, muon: MuonConfig | None) -> float:
    return 1.0 / config.width_mult


def _muon_rule(config: TransformerConfig, muon: MuonConfig | None) -> float:
    if muon is not None and muon.adjust_lr_fn != "original":
        raise ValueError(f"parametrization='mup' has no rule for Muon with adjust_lr_fn={muon.adjust_lr_fn!r} "
                         "(its step grows with sqrt(width)); use muon.adjust_lr_fn: original")
    return 1.0


#: μP's rate multiplier for the hidden matrices, per optimizer: ``(config, muon settings) -> factor``.
MUP_HIDDEN_LR: dict[str, Callable[[TransformerConfig, MuonConfig | None], float]] = {
    "adamw": _adamw_rule,
    "muon": _muon_rule,
}


def hidden_lr_multiplier(config: TransformerConfig, optimizer: str, muon: MuonConfig | None = None) -> float:
    """The factor on the hidden matrices' learning rate: 1 under the standard parametrisation, the
    optimizer's μP rule under mup (one line when it has none)."""
    if not config.is_mup:
        return 1.0
    if optimizer not in MUP_HIDDEN_LR:
        raise ValueError(f"parametrization='mup' has no learning-rate rule for optimizer={optimizer!r}; "
                         f"it has rules for {sorted(MUP_HIDDEN_LR)}")
    return MUP_HIDDEN_LR[optimizer](config, muon)


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups with weight decay on matrix weights only: decaying norms, biases or
    embeddings pulls them towards zero for no gain (Loshchilov & Hutter, 2019; common practice since
    GPT-2). Tied weights appear once; frozen ones not at all."""
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in module.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 and id(param) not in embeddings else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def split_parameters(module: nn.Module, model: ZooModel) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of ``module`` (the model, or a task holding it and its own head) by
    kind, each in ``module.parameters()`` order, tied weights once: ``hidden`` (``model``'s hidden
    matrices), ``matrix`` (the other matrices but embeddings: output heads, routers, classifier,
    adapter weights; decayed) and ``vector`` (embeddings, norms, biases; not decayed)."""
    hidden = {id(layer.weight) for layer in model.hidden_linears()}
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    kinds: dict[str, list[nn.Parameter]] = {"hidden": [], "matrix": [], "vector": []}
    for param in module.parameters():
        if not param.requires_grad:
            continue
        if id(param) in hidden:
            kinds["hidden"].append(param)
        elif param.ndim >= 2 and id(param) not in embeddings:
            kinds["matrix"].append(param)
        else:
            kinds["vector"].append(param)
    return kinds


def parameter_groups(
    module: nn.Module,
    model: ZooModel,
    *,
    optimizer: str = "adamw",
    lr: float,
    weight_decay: float,
    muon: MuonConfig | None = None,
) -> list[dict[str, Any]]:
    """The parameter groups of ``optimizer`` over ``module``.

    AdamW with the standard parametrisation: ``decay_groups``, as always. Otherwise named groups
    (Lightning's learning-rate monitor logs each by name): ``hidden`` — on Muon at ``muon.lr``, or on
    AdamW at ``lr`` × μP's multiplier — then ``matrix`` (decayed) and ``vector`` (not) on AdamW at
    ``lr``; an empty group is left out.

    Raises:
        ValueError: (one line) Muon with no trainable hidden matrix for it (all frozen, or an adapter
            trains instead), or μP with an optimizer it has no rule for.
    """
    config = model.config
    if optimizer == "adamw" and not config.is_mup:
        return decay_groups(module, weight_decay)
    kinds = split_parameters(module, model)
    multiplier = hidden_lr_multiplier(config, optimizer, muon)
    if optimizer == "muon":
        if not kinds["hidden"]:
            raise ValueError("optimizer='muon' has no matrix weights left to train: every attention and "
                             "feed-forward projection is frozen (freeze: body) or wrapped by an adapter; "
                             "use optimizer: adamw")
        muon = muon or MuonConfig()
        hidden = {"name": "hidden", "optimizer": "muon", "params": kinds["hidden"], "lr": muon.lr * multiplier,
                  "weight_decay": muon.weight_decay}
    else:
        hidden = {"name": "hidden", "params": kinds["hidden"], "lr": lr * multiplier, "weight_decay": weight_decay}
    groups = [hidden,
              {"name": "matrix", "params": kinds["matrix"], "lr": lr, "weight_decay": weight_decay},
              {"name": "vector", "params": kinds["vector"], "lr": lr, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def fused_adamw(groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float],
                eps: float) -> torch.optim.AdamW:
    """AdamW over ``groups``, fused where every tensor allows it."""
    # fused: one kernel per step over every tensor; the default for-loop AdamW was a tenth of a CPU step.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused)


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for the groups marked ``"optimizer": "muon"``, AdamW for the others, as one optimizer.

    The two are PyTorch's own (``torch.optim.Muon``, fused ``torch.optim.AdamW``); this optimizer
    holds their parameter groups (the same dicts, so a learning-rate scheduler reaches both) and one
    shared state, so ``state_dict`` is the ordinary optimizer format — what Lightning checkpoints
    and PyTorch's distributed ``get_optimizer_state_dict`` (FSDP) expect — and one ``step`` steps both.

    Args:
        groups: Parameter groups; those with ``"optimizer": "muon"`` hold 2-D weights only.
        lr: AdamW's default rate (groups may set their own).
        betas: AdamW betas.
        eps: AdamW epsilon.
        muon: Muon's settings (its rate is the default of Muon groups that set none).
    """

    def __init__(self, groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float], eps: float,
                 muon: MuonConfig) -> None:
        muon_groups = [g for g in groups if g.get("optimizer") == "muon"]
        adamw_groups = [{**g, "optimizer": "adamw"} for g in groups if g.get("optimizer") != "muon"]
        if not muon_groups:
            raise ValueError("MuonWithAdamW: no parameter group is marked for Muon")
        self._muon = torch.optim.Muon(muon_groups, lr=muon.lr, weight_decay=muon.weight_decay, momentum=muon.momentum,
                                      nesterov=muon.nesterov, ns_steps=muon.ns_steps, adjust_lr_fn=muon.adjust_lr_fn)
        self._adamw = fused_adamw(adamw_groups, lr=lr, betas=betas, eps=eps) if adamw_groups else None
        inner = [*self._muon.param_groups, *(self._adamw.param_groups if self._adamw else [])]
        super().__init__(inner, defaults={})
        self._share()

    def _share(self) -> None:
        """Point both inner optimizers at this one's groups and state (again after loading a state
        dict, which replaces both)."""
        self._muon.param_groups = [g for g in self.param_groups if g["optimizer"] == "muon"]
        self._muon.state = self.state
        if self._adamw is not None:
            self._adamw.param_groups = [g for g in self.param_groups if g["optimizer"] == "adamw"]
            self._adamw.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._share()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._muon.step()
        if self._adamw is not None:
            self._adamw.step()
        return loss


def build_optimizer(
    groups: list[dict[str, Any]],
    optimizer: str = "adamw",
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    muon: MuonConfig | None = None,
) -> torch.optim.Optimizer:
    """The optimizer called ``optimizer`` over ``groups`` (from ``parameter_groups``)."""
    if optimizer == "adamw":
        return fused_adamw(groups, lr=lr, betas=betas, eps=eps)
    if optimizer == "muon":
        return MuonWithAdamW(groups, lr=lr, betas=betas, eps=eps, muon=muon or MuonConfig())
    raise ValueError(f"optimizer={optimizer!r} must be one of {list(OPTIMIZERS)}")
