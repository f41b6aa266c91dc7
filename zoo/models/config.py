"""``TransformerConfig``: the fields every family shares. Each family subclasses it at the top of
its own file with its namesake's defaults, so every switch works in every family."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from zoo.blocks.attention import AttnImplementation
from zoo.blocks.feed_forward import ACTIVATIONS, ActivationName, default_ffn_dim
from zoo.blocks.layers import NormPlacement, ResidualName
from zoo.blocks.norms import NORMS, NormName
from zoo.blocks.positions import POSITIONS, PositionName, check_learned_length

#: ``standard``: the recipe's own initialisation and multipliers (GPT-2's fixed std, 1/sqrt(d) attention);
#: ``mup``: the maximal-update parametrisation (Yang et al., 2022, "Tensor Programs V"), see ``base_width``.
Parametrization = Literal["standard", "mup"]

#: Named recipes: the values a ``preset`` gives the fields a config leaves out. One source for each
#: (``GPTConfig.llama``, the registry's ``llama`` family and ``config: {preset: llama}`` in YAML read it).
PresetName = Literal["llama"]
PRESETS: dict[str, dict[str, Any]] = {
    # LLaMA (Touvron et al., 2023): RMSNorm, SwiGLU, rotary positions, grouped-query attention, no biases,
    # an untied head.
    "llama": dict(norm="rmsnorm", norm_eps=1e-6, activation="swiglu", position="rotary", bias=False,
                  tie_embeddings=False, num_heads=8, num_kv_heads=2, dropout=0.0),
}


def resolve_preset(cls: type[TransformerConfig], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over their ``preset``'s fields, exactly: every given field wins. When a given field
    sets back the family default that the preset changes (``preset: llama, bias: true``), the
    resolved values no longer name the preset (the constructor would read that field as left out)."""
    name = values.get("preset")
    if name is None:
        return dict(values)
    if name not in PRESETS:
        raise ValueError(f"{cls.__name__}: preset={name!r} is not one of {sorted(PRESETS)}")
    resolved = {**PRESETS[name], **values}
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    if any(resolved[k] == defaults[k] != v for k, v in PRESETS[name].items()):
        resolved["preset"] = None
    return resolved


@dataclass
class TransformerConfig:
    """Architecture of a zoo model.

    Args:
        vocab_size: Number of token ids (linked from the data module by ``zoo fit``).
        max_seq_len: Longest sequence; sizes the learned position table.
        embed_dim: Model width.
        num_layers: Number of layers (per stack, for encoder-decoders).
        num_heads: Attention query heads; must divide ``embed_dim`` unless ``head_dim`` is set.
        num_kv_heads: Key/value heads: ``num_heads`` (or null) = MHA, a divisor of it = GQA, 1 = MQA.
        head_dim: Width of each head; null = ``embed_dim // num_heads``.
        ffn_dim: Feed-forward hidden width; null = 4·embed_dim (⅔ of that for gated activations).
        activation: Feed-forward activation: relu, relu2 (relu(x)², Primer), gelu, gelu_tanh, swiglu,
            geglu, geglu_tanh.
        norm: layernorm, rmsnorm, rmsnorm_plus_one (scale 1 + weight, Gemma) or none.
        norm_placement: pre (norm inside the residual branch), post (after the residual sum) or
            sandwich (pre, plus a norm on each branch's output: Gemma 2).
        norm_eps: Epsilon of the norms.
        position: none, learned, sinusoidal, rotary, alibi or relative (T5 bucketed bias).
        dropout: Dropout on embeddings, residual branches and attention weights.
        bias: Biases in linear layers and LayerNorm.
        tie_embeddings: Share the input embedding matrix with the output head.
        attention_scale: Attention score scale; null = 1/sqrt(head_dim).
        attn_implementation: sdpa (fused kernels), eager (plain reference) or flex (FlexAttention for
            ALiBi, T5 bias, padding under causality, windows and document masks without a
            seq x seq tensor, where torch supports it: inference anywhere, training on CUDA; else sdpa).
        rope_base: Rotary frequency base (position=rotary).
        relative_num_buckets: T5 relative-bias buckets (position=relative).
        relative_max_distance: T5 relative-bias max distance (position=relative).
        scale_embedding: Multiply token embeddings by sqrt(embed_dim) before positions are added
            (Vaswani et al., 2017; Hugging Face Marian's ``scale_embedding``); null = only with
            sinusoidal positions, whose fixed unit-amplitude waves would otherwise swamp token
            embeddings initialised at ``init_std``.
        init_std: Standard deviation of the normal weight initialisation.
        pad_token_id: Padding id (linked from the data module).
        bos_token_id: Beginning-of-sequence id (linked from the data module).
        eos_token_id: End-of-sequence id (linked from the data module).
        qk_norm: Norm over each query and key head before the dot product: none, rmsnorm or
            layernorm (Qwen3 / Gemma 3 placement: per head, after the projection, before rotary
            positions, one weight of head_dim shared by the heads).
        sliding_window: Self-attention sees only keys less than this many positions away —
            itself and sliding_window - 1 earlier tokens in a causal stack (Mistral), as many on
            either side in a bidirectional one; null = global attention. The KV cache of a
            windowed layer keeps only sliding_window - 1 keys.
        global_layer_every: With sliding_window, every n-th layer (layers n-1, 2n-1, …, counted
            from 0) attends globally: 2 alternates local and global as Gemma 2, 6 is Gemma 3's
            5:1; null = every layer is windowed.
        num_experts: Mixture-of-experts feed-forward with this many experts of ffn_dim each, a
            router choosing experts_per_token of them per token (Mixtral); null = one dense
            feed-forward.
        experts_per_token: Experts each token is routed to (top-k), 1..num_experts.
        moe_aux_loss_weight: Weight of the load-balancing loss (Switch Transformer, k at balance)
            added to the training loss; logged as ``<stage>_aux_loss``.
        residual: sequential (attention, then feed-forward) or parallel (both read the layer
            input and are summed: GPT-J / GPT-NeoX / PaLM); not with post-norm.
        rotary_fraction: Fraction of each head's dimensions that rotary positions rotate (the
            first ones, GPT-NeoX's rotary_pct); head_dim · fraction must be a whole even number.
        attention_softcap: Cap attention scores at c·tanh(score/c) (Gemma 2: 50); null = none.
            Takes the eager attention path, SDPA kernels cannot cap.
        logit_softcap: Cap the output logits at c·tanh(logit/c) (Gemma 2: 30); null = none.
        preset: A named recipe (``llama``: RMSNorm, SwiGLU, rotary, 8 query heads sharing 2 key/value
            heads, no biases, untied head, no dropout) whose values every field you leave out takes;
            fields you give win. In Python, fields equal to the family default count as left out:
            use ``from_dict`` (or ``GPTConfig.llama(...)``) to set one back to it.
        parametrization: standard, or mup: the maximal-update parametrisation (Yang et al., 2022,
            "Tensor Programs V"), under which a learning rate tuned at ``base_width`` stays good
            at any width. Relative to the standard one, with m = embed_dim / base_width: hidden
            matrices (attention and feed-forward projections) start with std / sqrt(m) and train
            with AdamW at lr / m (Muon: lr, its orthogonalised step already has the right size);
            the output logits (LM head, classifier, MoE router) are multiplied by 1 / m;
            attention scores scale as 1/head_dim: the standard scale at the base head width times
            base head_dim / head_dim (sqrt(base head_dim) / head_dim by default). Width-dependent
            constants of the recipe (sqrt(embed_dim) embedding scale, T5's embed_dim ** -0.5
            output scale and relative-bias init) are taken at base_width. Embeddings, norms and
            biases keep their initialisation and rate. All multipliers are 1 at embed_dim =
            base_width, where mup is the standard model (``zoo.models.mup``).
        base_width: The embed_dim at which mup equals the standard parametrisation — the width
            whose learning rate you tuned; needed by mup (ignored by standard). Widths are
            assumed to grow together: num_heads fixed and head_dim = embed_dim // num_heads (or
            head_dim set, and then fixed), ffn_dim a fixed multiple of embed_dim (or null).
    """

    vocab_size: int = 8000
    max_seq_len: int = 512
    embed_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    ffn_dim: int | None = None
    activation: ActivationName = "gelu"
    norm: NormName = "layernorm"
    norm_placement: NormPlacement = "pre"
    norm_eps: float = 1e-5
    position: PositionName = "learned"
    dropout: float = 0.1
    bias: bool = True
    tie_embeddings: bool = True
    attention_scale: float | None = None
    attn_implementation: AttnImplementation = "sdpa"
    rope_base: float = 10000.0
    relative_num_buckets: int = 32
    relative_max_distance: int = 128
    scale_embedding: bool | None = None
    init_std: float = 0.02
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3
    qk_norm: NormName = "none"
    sliding_window: int | None = None
    global_layer_every: int | None = None
    num_experts: int | None = None
    experts_per_token: int = 2
    moe_aux_loss_weight: float = 0.01
    residual: ResidualName = "sequential"
    rotary_fraction: float = 1.0
    attention_softcap: float | None = None
    logit_softcap: float | None = None
    preset: PresetName | None = None
    parametrization: Parametrization = "standard"
    base_width: int | None = None

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"{type(self).__name__}: {message}")

        if self.preset is not None:
            check(self.preset in PRESETS, f"preset={self.preset!r} is not one of {sorted(PRESETS)}")
            fields = type(self).__dataclass_fields__
            for name, value in PRESETS[self.preset].items():
                if getattr(self, name) == fields[name].default:
                    setattr(self, name, value)

        for name in ("vocab_size", "max_seq_len", "embed_dim", "num_layers", "num_heads"):
            check(getattr(self, name) > 0, f"{name}={getattr(self, name)} must be a positive integer")
        check(self.activation in ACTIVATIONS, f"activation={self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        check(self.norm in NORMS, f"norm={self.norm!r} is not one of {sorted(NORMS)}")
        check(self.norm_placement in ("pre", "post", "sandwich"),
              f"norm_placement={self.norm_placement!r} must be 'pre', 'post' or 'sandwich'")
        check(self.position in POSITIONS, f"position={self.position!r} is not one of {list(POSITIONS)}")
        check(self.attn_implementation in ("sdpa", "eager", "flex"),
              f"attn_implementation={self.attn_implementation!r} must be 'sdpa', 'eager' or 'flex'")
        check(self.head_dim is not None or self.embed_dim % self.num_heads == 0,
              f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads} (or set head_dim)")
        for name in ("num_kv_heads", "head_dim", "ffn_dim"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{name}={value} must be a positive integer or null (the default)")
        kv = self.resolved_num_kv_heads
        check(kv > 0 and self.num_heads % kv == 0,
              f"num_heads={self.num_heads} must be divisible by num_kv_heads={self.num_kv_heads}")
        check(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        check(self.init_std >= 0, f"init_std={self.init_std} must be >= 0 (the std of the normal initialisation)")
        if self.position == "sinusoidal":
            check(self.embed_dim % 2 == 0, f"position='sinusoidal' needs an even embed_dim, got {self.embed_dim}")
        if self.position == "rotary" and self.rotary_fraction == 1.0:
            head_dim = self.resolved_head_dim
            check(head_dim % 2 == 0, f"position='rotary' needs an even head_dim, got {head_dim}")
        self._check_modern(check)
        self._check_parametrization(check)

    def _check_modern(self, check: Callable[[bool, str], None]) -> None:
        """The switches of the modern variants (QK-norm, sliding window, MoE, parallel residual,
        partial rotary, softcapping)."""
        check(self.qk_norm in NORMS, f"qk_norm={self.qk_norm!r} is not one of {sorted(NORMS)}")
        check(self.sliding_window is None or self.sliding_window > 0,
              f"sliding_window={self.sliding_window} must be a positive number of tokens "
              "(or null for global attention)")
        if self.global_layer_every is not None:
            check(self.global_layer_every > 0,
                  f"global_layer_every={self.global_layer_every} must be a positive integer (or null)")
            check(self.sliding_window is not None,
                  f"global_layer_every={self.global_layer_every} needs a sliding_window for the other layers")
        if self.num_experts is not None:
            check(self.num_experts >= 2,
                  f"num_experts={self.num_experts} must be >= 2 (null = a dense feed-forward)")
            check(1 <= self.experts_per_token <= self.num_experts,
                  f"experts_per_token={self.experts_per_token} must be between 1 and num_experts={self.num_experts}")
        check(self.moe_aux_loss_weight >= 0, f"moe_aux_loss_weight={self.moe_aux_loss_weight} must be >= 0")
        check(self.residual in ("sequential", "parallel"),
              f"residual={self.residual!r} must be 'sequential' or 'parallel'")
        check(self.residual == "sequential" or self.norm_placement != "post",
              "residual='parallel' needs norm_placement='pre' or 'sandwich' (each branch normalises its own input)")
        check(0.0 < self.rotary_fraction <= 1.0, f"rotary_fraction={self.rotary_fraction} must be in (0, 1]")
        if self.rotary_fraction != 1.0:
            check(self.position == "rotary", f"rotary_fraction={self.rotary_fraction} needs position='rotary', "
                                             f"got {self.position!r}")
            dims = self.resolved_head_dim * self.rotary_fraction
            check(abs(dims - round(dims)) < 1e-6 and round(dims) % 2 == 0 and round(dims) > 0,
                  f"rotary_fraction={self.rotary_fraction} of head_dim={self.resolved_head_dim} gives {dims:g} "
                  "rotary dimensions; it must give a whole, even number")
        for name in ("attention_softcap", "logit_softcap"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{name}={value} must be > 0 (or null for no capping)")

    def _check_parametrization(self, check: Callable[[bool, str], None]) -> None:
        check(self.parametrization in ("standard", "mup"),
              f"parametrization={self.parametrization!r} must be 'standard' or 'mup'")
        check(self.base_width is None or self.base_width > 0,
              f"base_width={self.base_width} must be a positive integer (the embed_dim mup is tuned at) or null")
        if self.parametrization != "mup":
            return
        check(self.base_width is not None,
              "parametrization='mup' needs base_width: the embed_dim whose learning rate you tuned "
              f"(e.g. base_width: {self.embed_dim} for this model)")
        check(self.base_width <= self.embed_dim,
              f"base_width={self.base_width} is larger than embed_dim={self.embed_dim}; mup transfers from a "
              "narrower base model up (set base_width <= embed_dim)")
        check(self.head_dim is not None or self.base_width % self.num_heads == 0,
              f"base_width={self.base_width} must be divisible by num_heads={self.num_heads} (the base model's "
              "head width is base_width // num_heads), or set head_dim")

    # Defaults resolved once, here: every builder, HF exporter and budget reads these.
    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.embed_dim // self.num_heads

    @property
    def resolved_num_kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def resolved_ffn_dim(self) -> int:
        return self.ffn_dim or default_ffn_dim(self.embed_dim, self.activation)

    @property
    def rotary_dims(self) -> int:
        """Dimensions of each head that rotary positions rotate."""
        return round(self.resolved_head_dim * self.rotary_fraction)

    def layer_window(self, index: int) -> int | None:
        """The sliding window of layer ``index`` (None = global attention)."""
        every = self.global_layer_every
        if self.sliding_window is None or (every is not None and (index + 1) % every == 0):
            return None
        return self.sliding_window

    @property
    def resolved_scale_embedding(self) -> bool:
        return self.position == "sinusoidal" if self.scale_embedding is None else self.scale_embedding

    @property
    def embed_scale(self) -> float:
        """The factor on token embeddings: sqrt(embed_dim) with ``scale_embedding`` (sqrt(base_width)
        under mup, where the embeddings keep their size at every width), else 1."""
        return self.recipe_width**0.5 if self.resolved_scale_embedding else 1.0

    @property
    def is_mup(self) -> bool:
        return self.parametrization == "mup"

    @property
    def width_mult(self) -> float:
        """m = embed_dim / base_width under mup (the ``mup`` package's name), 1 under standard."""
        return self.embed_dim / self.base_width if self.is_mup else 1.0

    @property
    def output_multiplier(self) -> float:
        """mup's factor on output logits (LM head, classifier, MoE router): 1 / width_mult."""
        return self.base_width / self.embed_dim if self.is_mup else 1.0

    @property
    def output_scale(self) -> float:
        """The factor on the final hidden states before the output head: the output multiplier
        (T5 adds its own scale)."""
        return self.output_multiplier

    @property
    def recipe_width(self) -> int:
        """The width at which the recipe's width-dependent constants (embedding scale, T5's output
        scale) are taken: embed_dim, or base_width under mup."""
        return self.base_width if self.is_mup else self.embed_dim

    @property
    def base_head_dim(self) -> int:
        """The head width of the base model: head_dim when it is set (fixed across widths), else
        base_width // num_heads under mup (resolved_head_dim under standard)."""
        if not self.is_mup or self.head_dim is not None:
            return self.resolved_head_dim
        return self.base_width // self.num_heads

    @property
    def resolved_attention_scale(self) -> float | None:
        """The score scale attention uses: ``attention_scale`` (None = 1/sqrt(head_dim)) under
        standard. Under mup the standard scale at the base head width, times base_head_dim / head_dim:
        scores scale as 1/head_dim (sqrt(base_head_dim) / head_dim by default; T5's constant 1.0
        becomes base_head_dim / head_dim), equal to the standard ones at base width."""
        if not self.is_mup:
            return self.attention_scale
        base = self.attention_scale if self.attention_scale is not None else self.base_head_dim**-0.5
        return base * self.base_head_dim / self.resolved_head_dim

    def check_sequence_length(self, length: int, what: str = "sequence length") -> None:
        """Refuse ``length`` positions when they overrun a learned position table (other schemes
        have no end); the one check behind data setup, generation, compare and ``zoo generate``."""
        if self.position == "learned":
            check_learned_length(length, self.max_seq_len, what)

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the model's function and weight shapes, defaults resolved: two
        configs with equal ``architecture()`` build the same model and load each other's weights.

        Left out: training-time and runtime choices (``dropout``, ``attn_implementation``,
        ``init_std``, ``moe_aux_loss_weight``), the special token ids, and settings of position
        schemes or switches not in use (``max_seq_len`` counts only for a learned table,
        ``experts_per_token`` only with experts, ``global_layer_every`` only with a window,
        ``parametrization`` and ``base_width`` only under mup).
        """
        values = self.to_dict()
        for name in ("dropout", "attn_implementation", "init_std", "pad_token_id", "bos_token_id", "eos_token_id",
                     "moe_aux_loss_weight", "preset"):
            values.pop(name)
        if self.num_experts is None:
            values.pop("experts_per_token")
        if self.sliding_window is None:
            values.pop("global_layer_every")
        unused = {"learned": ("max_seq_len",), "rotary": ("rope_base",),
                  "relative": ("relative_num_buckets", "relative_max_distance")}
        for position, names in unused.items():
            if self.position != position:
                for name in names:
                    values.pop(name)
        if not self.is_mup:  # standard models compare as before these fields existed
            values.pop("parametrization")
            values.pop("base_width")
        values.update(head_dim=self.resolved_head_dim, ffn_dim=self.resolved_ffn_dim,
                      scale_embedding=self.resolved_scale_embedding,
                      num_kv_heads=self.resolved_num_kv_heads)
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ints, floats, strings) — safe inside ``torch.load(weights_only=True)`` checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        """The config of ``values`` (a ``preset`` among them gives the fields left out, see ``resolve_preset``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
        return cls(**resolve_preset(cls, values))
