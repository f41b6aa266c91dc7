"""Mixture-of-experts feed-forward: a router sends each token to the top-k of E expert feed-forward
blocks and mixes their outputs (Shazeer et al., 2017; Mixtral's router, Jiang et al., 2024).

Shapes: b batch, t tokens, e embed dim, n = b·t tokens flattened, E experts, k experts per token.

Routing: ``p = softmax(router(x))`` over the E experts; the k largest are chosen and their
probabilities renormalised to sum to one (k > 1, as Mixtral), or kept as they are (k = 1, as the
Switch Transformer: renormalising would make the weight 1 and leave the router no gradient from
the model's loss). Dispatch sorts the n·k (token, expert) pairs by expert, so each expert runs once
on one contiguous slice; no token is ever dropped, so decoding with a cache sees what a full
forward sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def load_balancing_loss(probs: Tensor, counts: Tensor) -> Tensor:
    """Switch Transformer's auxiliary loss (Fedus et al., 2022, eqs. 4–6) with Mixtral's top-k count:
    ``E · Σ_e f_e · P_e``, where ``f_e`` is the fraction of tokens that chose expert e among their
    top k and ``P_e`` the mean router probability of e. It is k when routing is uniform, and only
    ``P`` carries gradient: lowering it pushes probability away from overloaded experts.

    Args:
        probs: Router probabilities ``(n, E)``.
        counts: How many tokens chose each expert, ``(E,)``.
    """
    n, num_experts = probs.shape
    fraction = counts.to(probs.dtype) / n  # (E,), sums to k
    return num_experts * (fraction * probs.mean(dim=0)).sum()


class MixtureOfExperts(nn.Module):
    """Top-k routing over expert feed-forward blocks; a drop-in for ``FeedForward``.

    After every forward, ``aux_loss`` holds that batch's load-balancing loss (a 0-dim tensor);
    ``ZooModel.aux_loss()`` collects it from every layer for the training loss.

    Args:
        experts: The E expert blocks, each ``(…, e) -> (…, e)`` (``FeedForward`` with any activation).
        embed_dim: Model width ``e``; the router is ``Linear(e, E)`` without bias.
        top_k: Experts per token, ``1 <= k <= E``.
        router_multiplier: Factor on the router logits (μP's output multiplier, 1 / width_mult).
    """

    def __init__(self, experts: Sequence[nn.Module], embed_dim: int, top_k: int = 2, router_multiplier: float = 1.0):
        super().__init__()
        if not 1 <= top_k <= len(experts):
            raise ValueError(f"top_k={top_k} must be between 1 and the number of experts ({len(experts)})")
        self.router = nn.Linear(embed_dim, len(experts), bias=False)
        self.experts = nn.ModuleList(experts)
        self.top_k = top_k
        self.router_multiplier = router_multiplier
        self.aux_loss: Tensor | None = None

    def route(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Router probabilities ``(n, E)`` (float32), the chosen experts ``(n, k)`` and their
        mixing weights ``(n, k)`` for tokens ``(n, e)``."""
        logits = self.router(tokens)
        if self.router_multiplier != 1.0:
            logits = logits * self.router_multiplier
        probs = logits.float().softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        if self.top_k > 1:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return probs, chosen, weights

    def forward(self, x: Tensor) -> Tensor:
        b, t, e = x.shape
        tokens = x.reshape(-1, e)  # (n, e)
        probs, chosen, weights = self.route(tokens)
        flat = chosen.flatten()  # (n·k,), the expert of each (token, slot) pair
        counts = torch.bincount(flat, minlength=len(self.experts))  # (E,)
        self.aux_loss = load_balancing_loss(probs, counts)

        order = flat.argsort(stable=True)  # pairs grouped by expert
        token_of = order // self.top_k  # (n·k,), the token of each sorted pair
        chunks = tokens.index_select(0, token_of).split(counts.tolist())  # one host sync per layer
        outputs = torch.cat([expert(chunk) for expert, chunk in zip(self.experts, chunks, strict=True)])  # (n·k, e)
        outputs = outputs * weights.flatten()[order, None].to(outputs.dtype)
        mixed = tokens.new_zeros(tokens.shape).index_add_(0, token_of, outputs.to(tokens.dtype))
        return mixed.view(b, t, e)
