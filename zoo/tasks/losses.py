"""The training loss: token-level cross-entropy in float32 without a float32 copy of the logits.

``F.cross_entropy(logits.float(), labels)`` — what the tasks did, and what Hugging Face models do —
writes a float32 copy of the ``(n, v)`` logits, a float32 log-softmax of it, and in backward a float32
gradient and a cast of it back: under bf16 on a CPU that was a third of a GPT-2-shaped training step
(vocab 8192, width 256; torch.profiler). ``token_cross_entropy`` gives the same float32 loss and the
same gradient (in the logits' dtype, as autograd returns it) in about a third of the time: the
forward takes the log-sum-exp a block of rows at a time, so no float32 copy of all the logits is ever
written, and the backward is one softmax kernel over the logits as they are.

Under ``torch.compile``, and on GPUs (where a row loop costs a kernel launch per block), the plain
form is used: the compiler fuses it into the same single pass.

Shapes: n scored positions, v vocab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.data.objectives import IGNORE_INDEX

# Rows per block: float32 blocks of 4 MiB per thread (128 rows of a 8192 vocabulary with one thread).
# Smaller blocks fit L2 but multiply the parallel regions: on a shared 2-core machine each region waits
# for a descheduled thread, and 1 MiB blocks made the loss 7x slower with two threads (4x faster with one).
_BLOCK_ELEMENTS_PER_THREAD = 1 << 20


@functools.cache
def compiled_token_cross_entropy() -> Callable[..., Tensor]:
    """``token_cross_entropy`` under ``torch.compile`` (built once): one fused pass forward and one
    backward, about twice as fast again on a shared 2-core CPU (``zoo.speed.CompileModel`` uses it)."""
    return torch.compile(token_cross_entropy)


def token_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean cross-entropy over the positions whose label is not ``ignore_index``, in float32.

    Equal to ``F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)`` (NaN when no
    position is scored, as there), value and gradient.

    Args:
        logits: ``(n, v)`` scores in any floating dtype.
        labels: ``(n,)`` target ids.
        ignore_index: Label of positions that are not scored.
    """
    if logits.device.type != "cpu" or torch.compiler.is_compiling():
        return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
    return _BlockwiseCrossEntropy.apply(logits, labels, ignore_index)


class _BlockwiseCrossEntropy(torch.autograd.Function):
    """Forward: the float32 log-sum-exp of each row, a block of rows at a time. Backward: one
    softmax over all rows in the logits' own dtype (the kernel accumulates in float32), scaled,
    with each scored row's target entry written from float32 ``p_target - 1`` — rounding ``p`` to
    bf16 first would cancel that difference to 0 when the model is confident."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:  # type: ignore[override]
        n, v = logits.shape
        rows = max(1, _BLOCK_ELEMENTS_PER_THREAD * torch.get_num_threads() // v)
        lse = torch.empty(n, dtype=torch.float32, device=logits.device)  # log-sum-exp of each row
        for start in range(0, n, rows):
            torch.logsumexp(logits[start : start + rows].float(), dim=-1, out=lse[start : start + rows])
        scored = labels != ignore_index
        targets = labels.masked_fill(~scored, 0)
        target_logits = logits[torch.arange(n, device=logits.device), targets].float()  # (n,)
        count = scored.sum()
        loss = torch.where(scored, lse - target_logits, 0.0).sum() / count  # 0/0 = NaN when nothing is scored
        ctx.save_for_backward(logits, targets, scored, (target_logits - lse).exp(), count)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        logits, targets, scored, target_probs, count = ctx.saved_tensors
        # d loss / d logits = (softmax - onehot(target)) · grad / count on scored rows, 0 elsewhere.
        # A Python float keeps the product in float32 before its one rounding (and this is the CPU
        # path, where reading the value costs no device sync); a float32 tensor operand would send a
        # bf16 tensor through a float32 copy.
        scale = float(grad_loss) / float(count) if count else float("nan")  # as 0/0 in F.cross_entropy
        grad = torch.softmax(logits, dim=-1).mul_(scale)
        if not bool(scored.all()):
            grad.masked_fill_(~scored[:, None], 0.0)
        target_grads = torch.where(scored, (target_probs - 1) * scale, 0.0)
        # index_put_, not scatter_: on a CPU, scatter_ into bf16 copies the whole tensor through float32.
        grad.index_put_((torch.arange(grad.shape[0], device=grad.device), targets), target_grads.to(grad.dtype))
        return grad, None, None
