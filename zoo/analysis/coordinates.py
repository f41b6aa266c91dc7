"""The coordinate check of μP's authors (Yang et al., 2022, "Tensor Programs V", appendix D; the
``mup`` package's ``get_coord_data``): train the same model at several widths for a few steps and
record the typical size — the mean |x| over its coordinates — of every layer's output. Under a
parametrisation whose learning rate transfers these curves are flat in the width, at
initialisation and after each step; where they grow with the width, a wider model at the same rate
blows up (under the standard parametrisation: attention and feed-forward outputs, logits).

``coordinate_check(make_task, batches, widths)`` returns a ``CoordinateCheck``: the sizes, and the
slope of log size against log width per layer and step (0 = flat, 1 = proportional to the width).
``plot_coordinate_check`` draws it as μP's authors do, one panel per step.

Layers (``layer_modules``): ``embedding`` (token embedding), ``<stack>.<i>.attention``,
``<stack>.<i>.cross_attention`` and ``<stack>.<i>.ffn`` (each branch's output, before the residual
sum), and ``logits`` (the output head). Each attention adds ``..._logits``: its scaled scores
q·k·scale (after QK-norm, before rotary positions, biases and masks), which only μP's 1/head_dim
attention scale keeps flat once training aligns queries with keys.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.blocks.attention import MultiHeadAttention
from zoo.blocks.stack import TransformerStack
from zoo.models.base import ZooModel


def layer_modules(model: ZooModel) -> dict[str, nn.Module]:
    """The modules whose outputs a coordinate check records, by layer name (see the module docstring)."""
    modules: dict[str, nn.Module] = {"embedding": model.embed_tokens}
    for stack_name in ("encoder", "decoder"):
        stack = getattr(model, stack_name, None)
        if not isinstance(stack, TransformerStack):
            continue
        for i, layer in enumerate(stack.layers):
            modules[f"{stack_name}.{i}.attention"] = layer.self_attn
            if getattr(layer, "cross_attn", None) is not None:
                modules[f"{stack_name}.{i}.cross_attention"] = layer.cross_attn
            modules[f"{stack_name}.{i}.ffn"] = layer.ffn
    modules["logits"] = model.output_head
    return modules


@contextlib.contextmanager
def record_sizes(model: ZooModel) -> Iterator[dict[str, float]]:
    """Within this block, each forward of ``model`` writes the mean |output| of every layer of
    ``layer_modules`` into the yielded dict (the last call of a module counts)."""
    sizes: dict[str, float] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: Any, output: Tensor) -> None:
            sizes[name] = output.detach().float().abs().mean().item()
        return record

    def scores(name: str) -> Callable[..., None]:
        def record(module: MultiHeadAttention, args: tuple, kwargs: dict, output: Tensor) -> None:
            with torch.no_grad():
                x = args[0]
                context = args[1] if len(args) > 1 else kwargs.get("context")
                q = module._heads(module.q_proj(x), module.num_heads)  # (b, h, t, d)
                k = module._heads(module.k_proj(x if context is None else context), module.num_kv_heads)
                if module.q_norm is not None:
                    q, k = module.q_norm(q), module.k_norm(k)
                k = k.repeat_interleave(module.num_heads // module.num_kv_heads, dim=1)  # (b, h, s, d)
                scale = module.scale if module.scale is not None else module.head_dim**-0.5
                sizes[f"{name}_logits"] = (q @ k.transpose(-2, -1)).float().abs().mean().item() * scale
        return record

    for name, module in layer_modules(model).items():
        handles.append(module.register_forward_hook(hook(name)))
        if isinstance(module, MultiHeadAttention):
            handles.append(module.register_forward_hook(scores(name), with_kwargs=True))
    try:
        yield sizes
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class CoordinateCheck:
    """Sizes of every layer's output across widths and training steps.

    Attributes:
        widths: The model widths (embed_dim), ascending.
        sizes: Layer name -> step (0 = initialisation, k = after k optimizer steps) -> one mean
            |output| per width.
        losses: Step -> the training loss per width.
    """

    widths: list[int]
    sizes: dict[str, list[list[float]]] = field(default_factory=dict)
    losses: list[list[float]] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        return list(self.sizes)

    @property
    def num_steps(self) -> int:
        """Optimizer steps taken (the sizes have one more entry: initialisation)."""
        return len(self.losses) - 1

    def slope(self, layer: str, step: int) -> float:
        """Least-squares slope of log(size) against log(width) of ``layer`` at ``step``: 0 when the
        size does not change with the width, 0.5 for sqrt(width), 1 for proportional."""
        x = [math.log(w) for w in self.widths]
        y = [math.log(max(s, 1e-30)) for s in self.sizes[layer][step]]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)

    def slopes(self, step: int) -> dict[str, float]:
        """Every layer's slope at ``step``."""
        return {layer: self.slope(layer, step) for layer in self.sizes}

    def steepest(self, steps: Sequence[int] | None = None) -> tuple[float, str, int]:
        """The largest slope over ``steps`` (default: all) and layers: ``(slope, layer, step)``."""
        steps = range(self.num_steps + 1) if steps is None else steps
        return max((self.slope(layer, step), layer, step) for step in steps for layer in self.sizes)


def coordinate_check(
    make_task: Callable[[int], Any],
    batches: Sequence[Mapping[str, Tensor]],
    widths: Sequence[int] = (64, 128, 256, 512),
    *,
    steps: int = 5,
    seed: int = 0,
) -> CoordinateCheck:
    """Run the coordinate check.

    Args:
        make_task: ``width -> task``: a zoo ``LanguageModelTask`` (``CausalLM``, ``MaskedLM``,
            ``Seq2SeqLM``, ...) whose model has ``embed_dim = width``, built fresh; its own optimizer
            and schedule (``configure_optimizers``) take the steps, so μP's per-group rates are the
            ones ``zoo fit`` uses. Its schedule must not need a Trainer: ``scheduler="constant"``
            or a ``max_steps``. Dropout 0 keeps the sizes free of sampling noise.
        batches: Training batches, as the task's data module makes them; step k reads batch
            ``k mod len(batches)``, the same at every width.
        widths: embed_dim values, ascending.
        steps: Optimizer steps after the measurement at initialisation.
        seed: Seeds each width's initialisation (``torch.manual_seed``).

    Returns:
        The sizes measured on each step's batch before its update (step 0: at initialisation).
    """
    check = CoordinateCheck(widths=sorted(widths))
    for width in check.widths:
        torch.manual_seed(seed)
        task = make_task(width)
        task.train()
        configured = task.configure_optimizers()
        optimizer = configured["optimizer"]
        scheduler = configured["lr_scheduler"]["scheduler"]
        for step in range(steps + 1):
            batch = batches[step % len(batches)]
            with record_sizes(task.model) as sizes:
                loss = task.forward_loss(batch)[0]
            for layer, size in sizes.items():
                check.sizes.setdefault(layer, [[] for _ in range(steps + 1)])[step].append(size)
            if len(check.losses) <= step:
                check.losses.append([])
            check.losses[step].append(loss.item())
            if step < steps:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
    return check


def plot_coordinate_check(check: CoordinateCheck, steps: Sequence[int] | None = None, *, title: str = "",
                          axes: Sequence[Any] | None = None) -> Any:
    """One panel per step (default: initialisation and the last step): the mean |output| of every
    layer against the width, both axes logarithmic — flat lines are what μP promises.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    steps = [0, check.num_steps] if steps is None else list(steps)
    if axes is None:
        fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.6), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    colours = plt.get_cmap("viridis")
    layers = check.layers
    for ax, step in zip(axes, steps, strict=True):
        for i, layer in enumerate(layers):
            colour = colours(i / max(1, len(layers) - 1))
            ax.plot(check.widths, check.sizes[layer][step], marker="o", color=colour, label=layer,
                    linestyle="--" if layer in ("embedding", "logits") else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(check.widths, [str(w) for w in check.widths])
        ax.set_xlabel("width (embed_dim)")
        ax.set_title(f"{title}{', ' if title else ''}{'initialisation' if step == 0 else f'after step {step}'}")
    axes[0].set_ylabel("mean |activation|")
    axes[-1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


#: The pretraining objective of each family shape: what the coordinate check trains on.
OBJECTIVES = {"encoder": "mlm", "decoder": "clm", "encoder-decoder": "span"}


@functools.lru_cache(maxsize=8)
def training_batches(objective: str, count: int = 3, *, seq_len: int = 32, batch_size: int = 4,
                     seed: int = 0) -> tuple[int, tuple[dict[str, Tensor], ...]]:
    """The vocabulary size and the first ``count`` training batches of the built-in corpus for
    ``objective`` (``mlm``, ``clm``, ``span``), character tokenizer (cached per process)."""
    from zoo.data import TextDataModule

    data = TextDataModule(objective=objective, tokenizer="char", max_seq_len=seq_len, batch_size=batch_size,
                          max_documents=200, seed=seed)
    data.prepare_data()
    data.setup("fit")
    loader = iter(data.train_dataloader())
    return data.vocab_size, tuple(next(loader) for _ in range(count))


def family_coordinate_check(
    family: str,
    parametrization: str,
    widths: Sequence[int] = (64, 128, 256, 512),
    *,
    base_width: int | None = None,
    optimizer: str = "adamw",
    lr: float = 1e-2,
    muon_lr: float | None = None,
    steps: int = 5,
    num_layers: int = 2,
    num_heads: int = 4,
    seq_len: int = 32,
    batch_size: int = 4,
    seed: int = 0,
    **config_fields: Any,
) -> CoordinateCheck:
    """``coordinate_check`` of a registry family (``bert``, ``gpt``, ``llama``, ``t5``) pretrained on
    the built-in corpus with its own objective at a constant rate, no dropout.

    Args:
        family: A ``zoo.models.registry`` family name (presets included).
        parametrization: ``standard`` or ``mup``.
        widths: embed_dim values.
        base_width: μP's base width; default the first width.
        optimizer: ``adamw`` or ``muon``.
        lr: The task's ``lr`` (AdamW's), constant from the first step.
        muon_lr: Muon's rate (default Muon's own).
        steps: Optimizer steps after initialisation.
        num_layers: Layers per stack.
        num_heads: Attention heads (fixed: head_dim grows with the width).
        seq_len: Tokens per sequence.
        batch_size: Sequences per batch.
        seed: Initialisation and data seed.
        **config_fields: Further config fields (e.g. ``num_experts=2``).
    """
    from zoo.models.registry import get_family

    spec = get_family(family)
    vocab_size, batches = training_batches(OBJECTIVES[spec.shape], seq_len=seq_len, batch_size=batch_size,
                                           seed=seed)
    mup = {"parametrization": "mup", "base_width": base_width or min(widths)} if parametrization == "mup" else {}
    muon = {"lr": muon_lr} if muon_lr is not None else None

    def make_task(width: int) -> Any:
        config = spec.make_config(vocab_size=vocab_size, max_seq_len=seq_len, embed_dim=width, num_layers=num_layers,
                                  num_heads=num_heads, dropout=0.0, **{**config_fields, **mup})
        return spec.task_class(config, lr=lr, warmup_steps=0, scheduler="constant", optimizer=optimizer, muon=muon)

    return coordinate_check(make_task, batches, widths, steps=steps, seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zoo.analysis.coordinates``: the coordinate check of each family under both
    parametrisations; prints the steepest slope of each and saves the plots."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zoo.analysis.coordinates", description=main.__doc__)
    parser.add_argument("--family", nargs="+", default=["bert", "gpt", "llama", "t5"])
    parser.add_argument("--widths", default="64,128,256,512", help="comma-separated embed_dim values")
    parser.add_argument("--base-width", type=int, default=None, help="μP's base width (default: the first width)")
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "muon"])
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--plot", default=None, help="directory for <family>.png (both parametrisations)")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"steepest slope of log mean|activation| vs log width over steps 0..{args.steps} "
          f"(widths {widths}, {args.optimizer} lr {args.lr:g}); 0 = flat")
    for family in args.family:
        checks = {}
        for parametrization in ("standard", "mup"):
            check = family_coordinate_check(family, parametrization, widths, base_width=args.base_width,
                                            optimizer=args.optimizer, lr=args.lr, steps=args.steps,
                                            num_layers=args.num_layers)
            slope, layer, step = check.steepest()
            print(f"{family:6} {parametrization:9} {slope:+.2f}  ({layer}, step {step})")
            checks[parametrization] = check
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            steps = [0, args.steps]
            fig, axes = plt.subplots(2, len(steps), figsize=(4.2 * len(steps) + 2.5, 7), sharey=True, squeeze=False)
            for row, (parametrization, check) in zip(axes, checks.items(), strict=True):
                plot_coordinate_check(check, steps, title=f"{family} {parametrization}", axes=row)
            Path(args.plot).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(args.plot) / f"{family}.png", dpi=110)
            plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
