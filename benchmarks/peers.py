"""The library peers of the training benchmark, built at a zoo model's shape.

- ``x-transformers`` (lucidrains): ``TransformerWrapper`` + ``Decoder`` (GPT-2, LLaMA) or ``Encoder``
  (BERT), and ``XTransformer`` for the encoder-decoder (T5), with flash attention (SDPA) on, as its
  README recommends (not for T5: it refuses flash with T5's relative bias).
- ``litgpt`` (Lightning AI): ``litgpt.model.GPT`` for the two decoder shapes; it has no encoder and
  no learned position table, so its GPT-2-shaped model uses rotary positions (the parameter counts
  the benchmark prints show the table it lacks).

Neither is converted from the zoo's weights (they initialise their own): the benchmark compares
speed at equal shapes, and prints every model's parameter count to show the shapes match. Each peer
computes the loss the way its users do, ``F.cross_entropy`` over the logits (x-transformers'
``AutoregressiveWrapper`` and litgpt's ``chunked_cross_entropy`` with its default chunk size 0 are
that). Install: ``pip install x-transformers`` and ``pip install --no-deps litgpt`` (``.[bench]``
has the first; litgpt's own pins — huggingface-hub<1.4, jsonargparse<=4.41 — would break
transformers 5, and only ``litgpt.model`` is imported here, which needs neither).

Shapes: b batch, t tokens, v vocab.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.config import TransformerConfig

PEERS = ("transformers", "x-transformers", "litgpt")
_MODULES = {"transformers": "transformers", "x-transformers": "x_transformers", "litgpt": "litgpt"}


def missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here (not installed), or None."""
    if importlib.util.find_spec(_MODULES[peer]) is None:
        how = "pip install --no-deps litgpt" if peer == "litgpt" else f"pip install {peer}"
        return f"{peer} is not installed ({how})"
    return None


def build(peer: str, family: str, config: TransformerConfig, seq_len: int) -> nn.Module | None:
    """``peer``'s model of ``family`` at the shape of the zoo ``config``; None where the library has
    no such architecture (litgpt: BERT, T5). ``transformers`` is built by ``zoo.hf.to_hf`` instead."""
    if peer == "x-transformers":
        return _x_transformers(family, config, seq_len)
    if peer == "litgpt":
        return _litgpt(family, config, seq_len)
    raise ValueError(f"unknown peer {peer!r}; choose one of {PEERS[1:]}")


def _x_transformers(family: str, c: TransformerConfig, seq_len: int) -> nn.Module:
    from x_transformers import Decoder, Encoder, TransformerWrapper, XTransformer

    layers = dict(dim=c.embed_dim, depth=c.num_layers, heads=c.num_heads, attn_dim_head=c.resolved_head_dim,
                  attn_flash=True, ff_mult=c.resolved_ffn_dim / c.embed_dim)
    if family == "gpt2":  # learned positions, pre-norm LayerNorm, tanh GELU, tied head
        return TransformerWrapper(num_tokens=c.vocab_size, max_seq_len=seq_len, tie_embedding=True,
                                  attn_layers=Decoder(**layers, ff_custom_activation=nn.GELU(approximate="tanh")))
    if family == "llama":  # rotary, RMSNorm, SwiGLU, grouped-query attention, no biases, untied head
        return TransformerWrapper(
            num_tokens=c.vocab_size, max_seq_len=seq_len, use_abs_pos_emb=False,
            attn_layers=Decoder(**layers, attn_kv_heads=c.resolved_num_kv_heads, rotary_pos_emb=True,
                                rotary_emb_dim=c.rotary_dims,  # its default rotates half of each head
                                use_rmsnorm=True, ff_glu=True, ff_swish=True, ff_no_bias=True))
    if family == "bert":  # learned positions, post-norm LayerNorm (and on the embeddings), GELU, tied head
        return TransformerWrapper(num_tokens=c.vocab_size, max_seq_len=seq_len, tie_embedding=True,
                                  post_emb_norm=True, attn_layers=Encoder(**layers, pre_norm=False))
    # T5: bucketed relative bias, pre-norm RMSNorm, ReLU, no biases, one embedding shared by both sides and
    # the head. x-transformers refuses flash attention with T5's bias: its own einsum attention runs.
    side = {f"{prefix}_{key}": value for prefix in ("enc", "dec") for key, value in
            dict(num_tokens=c.vocab_size, max_seq_len=seq_len, depth=c.num_layers, heads=c.num_heads,
                 attn_dim_head=c.resolved_head_dim, ff_mult=c.resolved_ffn_dim / c.embed_dim,
                 rel_pos_bias=True, use_rmsnorm=True, ff_custom_activation=nn.ReLU(), ff_no_bias=True,
                 use_abs_pos_emb=False).items()}
    model = XTransformer(dim=c.embed_dim, tie_token_emb=True, **side)
    model.decoder.net.to_logits.weight = model.encoder.token_emb.emb.weight
    return model


def _litgpt(family: str, c: TransformerConfig, seq_len: int) -> nn.Module | None:
    if family not in ("gpt2", "llama"):
        return None
    from litgpt.config import Config
    from litgpt.model import GPT

    shape = dict(block_size=seq_len, vocab_size=c.vocab_size, padded_vocab_size=c.vocab_size, n_layer=c.num_layers,
                 n_head=c.num_heads, n_embd=c.embed_dim, head_size=c.resolved_head_dim,
                 intermediate_size=c.resolved_ffn_dim, rotary_percentage=1.0, parallel_residual=False)
    if family == "gpt2":
        config = Config(**shape, n_query_groups=c.num_heads, bias=True, norm_class_name="LayerNorm", norm_eps=1e-5,
                        mlp_class_name="GptNeoxMLP", gelu_approximate="tanh")
    else:
        config = Config(**shape, n_query_groups=c.resolved_num_kv_heads, bias=False, norm_class_name="RMSNorm",
                        norm_eps=c.norm_eps, mlp_class_name="LLaMAMLP")
    model = GPT(config)
    # litgpt leaves initialisation to its pretraining script; N(0, 1) embeddings tied to the head give
    # logits in the hundreds. The zoo's init_std keeps the first loss near ln(vocab), as the others'.
    nn.init.normal_(model.transformer.wte.weight, std=c.init_std)
    if c.tie_embeddings:
        model.lm_head.weight = model.transformer.wte.weight
    return model


def loss(peer: str, family: str, model: nn.Module, ids: Tensor, labels: Tensor,
         decoder_ids: Tensor | None = None) -> Callable[[], Tensor]:
    """The step's loss for a peer model: ``F.cross_entropy`` over its logits for ``labels`` (-100 =
    not scored); ``decoder_ids`` feed an encoder-decoder's decoder."""
    if peer == "x-transformers" and family == "t5":
        def logits() -> Tensor:
            encoded = model.encoder(ids, return_embeddings=True)
            return model.decoder.net(decoder_ids, context=encoded)  # (b, t, v)
    else:
        def logits() -> Tensor:
            return model(ids)  # (b, t, v)

    return lambda: F.cross_entropy(logits().flatten(0, 1), labels.flatten(), ignore_index=-100)


def num_parameters(model: nn.Module) -> int:
    """Parameters, tied ones once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())



def version(peer: str) -> str:
    """The installed version of ``peer``."""
    from importlib.metadata import version as installed

    return installed(peer)
