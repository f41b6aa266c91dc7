"""The training loss: token-level cross-entropy in float32 without a float32 copy of the logits.

``F.cross_entropy(logits.float(), labels)`` — what the tasks did, and what Hugging Face models do —
writes a float32 copy of the ``(n, v)`` logits, a float32 log-softmax of it, and in backward a float32
gradient and a cast of it back: under bf16 on a CPU that was a third of a GPT-2-shaped training step
(vocab 8192, width 256; torch.profiler). ``token_cross_entropy`` gives the same float32 loss and the
same gradient (in the logits' dtype, as autograd returns it) in about a third of the time: the
forward takes the log-sum-exp a block of rows at a time, so no float32 copy of all the logits is ever
written, and the backward is one softmax kernel over the logits as they are.

Under ``torch.compile`` on a CPU — ``--compile.enabled`` compiles a task's whole step, loss included
(``LanguageModelTask.forward_loss``) — the row loop would be traced as it stands, so ``_CompiledCrossEntropy``
says the same in whole-tensor ops the compiler fuses: the log-sum-exp forward, and a backward of one
softmax pass plus a scatter of the ``n`` target entries. ``F.cross_entropy``'s own compiled backward
compares every column index with the row's target to place the ``-1``, and inductor's boolean
kernels are slow on a CPU: a (1024, 8192) loss forward + backward took 12.1 ms (bf16) / 11.7 ms
(fp32) that way and 7.0 / 6.9 ms this way (same values). On GPUs (where a row loop costs a kernel
launch per block) the plain form is used.

Shapes: n scored positions, v vocab.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.data.objectives import IGNORE_INDEX

# Rows per block: float32 blocks of 4 MiB per thread (128 rows of a 8192 vocabulary with one thread).
# Smaller blocks fit L2 but multiply the parallel regions: on a shared 2-core machine each region waits
# for a descheduled thread, and 1 MiB blocks made the loss 7x slower with two threads (4x faster with one).
_BLOCK_ELEMENTS_PER_THREAD = 1 << 20


def token_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean cross-entropy over the positions whose label is not ``ignore_index``, in float32.

    Equal to ``F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)`` (NaN when no
    position is scored, as there), value and gradient.

    Args:
        logits: ``(n, v)`` scores in any floating dtype.
        labels: ``(n,)`` target ids.
        ignore_index: Label of positions that are not scored.
    """
    if logits.device.type != "cpu":
        return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
    if torch.compiler.is_compiling():
        return _CompiledCrossEntropy.apply(logits, labels, ignore_index)
    return _BlockwiseCrossEntropy.apply(logits, labels, ignore_index)


def _mean_loss(logits: Tensor, labels: Tensor, lse: Tensor, ignore_index: int
               ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """From each row's log-sum-exp ``lse``: the mean loss over scored rows, the target ids (0 on
    rows not scored), the scored mask, the float32 target logits ``(n,)`` and the scored count."""
    scored = labels != ignore_index
    targets = labels.masked_fill(~scored, 0)
    target_logits = logits.gather(1, targets[:, None]).squeeze(1).float()
    count = scored.sum()
    loss = torch.where(scored, lse - target_logits, 0.0).sum() / count  # 0/0 = NaN when nothing is scored
    return loss, targets, scored, target_logits, count


class _CompiledCrossEntropy(torch.autograd.Function):
    """``_BlockwiseCrossEntropy`` in whole-tensor ops, for ``torch.compile`` on a CPU: forward the
    float32 log-sum-exp of each row; backward ``exp(logits - lse)`` scaled (one fused pass, rounded
    once to the logits' dtype), then each scored row's target entry set from float32
    ``p_target - 1`` by a scatter of ``n`` values — no comparison over the ``(n, v)`` logits."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:  # type: ignore[override]
        lse = torch.logsumexp(logits.float(), dim=-1)
        loss, targets, scored, target_logits, count = _mean_loss(logits, labels, lse, ignore_index)
        ctx.save_for_backward(logits, lse, targets, scored, count, target_logits)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        logits, lse, targets, scored, count, target_logits = ctx.saved_tensors
        scale = torch.where(scored, grad_loss / count, 0.0)  # (n,): 0 on rows not scored
        grad = ((logits.float() - lse[:, None]).exp() * scale[:, None]).to(logits.dtype)
        target_grads = ((target_logits - lse).exp() - 1) * scale
        rows = torch.arange(grad.shape[0], device=grad.device)
        return grad.index_put((rows, targets), target_grads.to(grad.dtype)), None, None


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
        loss, targets, scored, target_logits, count = _mean_loss(logits, labels, lse, ignore_index)
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
