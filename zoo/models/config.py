"""``TransformerConfig``: the fields every family shares. Each family subclasses it at the top of
its own file with its namesake's defaults, so every switch works in every family."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zoo.blocks.attention import AttnImplementation
from zoo.blocks.feed_forward import ACTIVATIONS, ActivationName, default_ffn_dim
from zoo.blocks.layers import NormPlacement
from zoo.blocks.norms import NORMS, NormName
from zoo.blocks.positions import POSITIONS, PositionName, check_learned_length


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
        activation: Feed-forward activation: relu, gelu, gelu_tanh, swiglu, geglu, geglu_tanh.
        norm: layernorm, rmsnorm or none.
        norm_placement: pre (norm inside the residual branch) or post (after the residual sum).
        norm_eps: Epsilon of the norms.
        position: none, learned, sinusoidal, rotary, alibi or relative (T5 bucketed bias).
        dropout: Dropout on embeddings, residual branches and attention weights.
        bias: Biases in linear layers and LayerNorm.
        tie_embeddings: Share the input embedding matrix with the output head.
        attention_scale: Attention score scale; null = 1/sqrt(head_dim).
        attn_implementation: sdpa (fused kernels) or eager (plain reference).
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

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"{type(self).__name__}: {message}")

        for name in ("vocab_size", "max_seq_len", "embed_dim", "num_layers", "num_heads"):
            check(getattr(self, name) > 0, f"{name}={getattr(self, name)} must be a positive integer")
        check(self.activation in ACTIVATIONS, f"activation={self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        check(self.norm in NORMS, f"norm={self.norm!r} is not one of {sorted(NORMS)}")
        check(self.norm_placement in ("pre", "post"), f"norm_placement={self.norm_placement!r} must be 'pre' or 'post'")
        check(self.position in POSITIONS, f"position={self.position!r} is not one of {list(POSITIONS)}")
        check(self.attn_implementation in ("sdpa", "eager"),
              f"attn_implementation={self.attn_implementation!r} must be 'sdpa' or 'eager'")
        check(self.head_dim is not None or self.embed_dim % self.num_heads == 0,
              f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads} (or set head_dim)")
        for name in ("num_kv_heads", "head_dim", "ffn_dim"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{name}={value} must be a positive integer or null (the default)")
        kv = self.resolved_num_kv_heads
        check(kv > 0 and self.num_heads % kv == 0,
              f"num_heads={self.num_heads} must be divisible by num_kv_heads={self.num_kv_heads}")
        check(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        if self.position == "sinusoidal":
            check(self.embed_dim % 2 == 0, f"position='sinusoidal' needs an even embed_dim, got {self.embed_dim}")
        if self.position == "rotary":
            head_dim = self.resolved_head_dim
            check(head_dim % 2 == 0, f"position='rotary' needs an even head_dim, got {head_dim}")

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
    def resolved_scale_embedding(self) -> bool:
        return self.position == "sinusoidal" if self.scale_embedding is None else self.scale_embedding

    @property
    def embed_scale(self) -> float:
        """The factor on token embeddings: sqrt(embed_dim) with ``scale_embedding``, else 1."""
        return self.embed_dim**0.5 if self.resolved_scale_embedding else 1.0

    def check_sequence_length(self, length: int, what: str = "sequence length") -> None:
        """Refuse ``length`` positions when they overrun a learned position table (other schemes
        have no end); the one check behind data setup, generation, compare and ``zoo generate``."""
        if self.position == "learned":
            check_learned_length(length, self.max_seq_len, what)

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the model's function and weight shapes, defaults resolved: two
        configs with equal ``architecture()`` build the same model and load each other's weights.

        Left out: training-time and runtime choices (``dropout``, ``attn_implementation``,
        ``init_std``), the special token ids, and settings of position schemes not in use
        (``max_seq_len`` counts only for a learned table).
        """
        values = self.to_dict()
        for name in ("dropout", "attn_implementation", "init_std", "pad_token_id", "bos_token_id", "eos_token_id"):
            values.pop(name)
        unused = {"learned": ("max_seq_len",), "rotary": ("rope_base",),
                  "relative": ("relative_num_buckets", "relative_max_distance")}
        for position, names in unused.items():
            if self.position != position:
                for name in names:
                    values.pop(name)
        values.update(head_dim=self.resolved_head_dim, ffn_dim=self.resolved_ffn_dim,
                      scale_embedding=self.resolved_scale_embedding,
                      num_kv_heads=self.resolved_num_kv_heads)
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ints, floats, strings) — safe inside ``torch.load(weights_only=True)`` checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
        return cls(**values)
