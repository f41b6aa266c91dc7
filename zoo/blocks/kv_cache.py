"""Key/value caches of one attention layer: ``KVCache`` keeps every key, ``SlidingWindowCache`` only
what a sliding-window layer can still attend to.

Shapes: b batch, k key/value heads, s keys held, t new keys, d head dim; ``k``/``v`` are ``(b, k, s, d)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Keys and values of one attention layer, ``k``/``v`` of shape ``(b, k, s, d)``.

    For self-attention they grow by the new tokens each step; for cross-attention they are the
    projected encoder output, computed on the first step and reused after.

    Growing writes into a preallocated buffer (``k``/``v`` are views of its filled part) instead of
    concatenating, which would copy the whole history every step. The buffer holds ``capacity``
    keys when that is set (``reserve``), else it doubles when full. With autograd recording, it
    concatenates: writing into a buffer would invalidate views saved for backward.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.capacity = capacity
        self._buffers: tuple[Tensor, Tensor] | None = None  # (b, k, size, d) each
        self._start = 0  # where the held keys begin in the buffers

    @property
    def seq_len(self) -> int:
        """Keys held (for a sliding window, fewer than the tokens seen)."""
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new keys/values ``(b, k, t, d)``; returns every key the new queries may see."""
        s, t = self.seq_len, k.shape[2]
        if k.requires_grad or v.requires_grad:
            if self.k is not None:
                k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
            self.k, self.v, self._buffers = k, v, None
            return k, v
        if self.k is None and self.capacity <= t:  # nothing more expected yet: keep the tensors as they are
            self.k, self.v = k, v
            return k, v
        if self._buffers is None or s + t > self._buffers[0].shape[2]:
            b, h, _, d = k.shape
            size = max(self.capacity, 2 * (s + t))
            buffers = k.new_empty(b, h, size, d), v.new_empty(b, h, size, d)
            if s:
                buffers[0].narrow(2, 0, s).copy_(self.k)
                buffers[1].narrow(2, 0, s).copy_(self.v)
            self._buffers = buffers
        k_buffer, v_buffer = self._buffers
        k_buffer.narrow(2, s, t).copy_(k)
        v_buffer.narrow(2, s, t).copy_(v)
        self.k, self.v = k_buffer.narrow(2, 0, s + t), v_buffer.narrow(2, 0, s + t)
        return self.k, self.v

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (beam search reshuffles hypotheses each step)."""
        if self.k is None:
            return
        if self._buffers is None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)
            return
        s = self.seq_len
        self._buffers = tuple(buffer.index_select(0, index) for buffer in self._buffers)
        self.k, self.v = (buffer.narrow(2, self._start, s) for buffer in self._buffers)


class SlidingWindowCache(KVCache):
    """The cache of a causal sliding-window layer: between steps it holds only the last
    ``window - 1`` keys, all that a later query can see (itself and ``window - 1`` keys before it).

    ``append`` returns the held keys followed by the new ones; the mask a stack prepares spans
    every position so far, and attention reads its last columns (``MultiHeadAttention.forward``).

    Storage is a buffer of ``2·(window - 1)`` keys: new keys are written after the held ones, and
    when the buffer's end is reached the held keys move to its front — once every ``window`` steps
    or so, so a decoding step copies O(1) keys on average. A chunk that does not fit (a long
    prompt) is concatenated instead and only its tail kept. ``capacity`` is not used.
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"sliding window={window} must be >= 1")
        self.window = window
        self.keep = window - 1

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.seq_len, k.shape[2]
        size = 2 * self.keep
        if k.requires_grad or v.requires_grad or s + t > size:
            if self.k is not None:
                k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
            self._hold_tail(k, v)
            return k, v
        if self._buffers is None:
            b, h, _, d = k.shape
            self._buffers, self._start = (k.new_empty(b, h, size, d), v.new_empty(b, h, size, d)), 0
        elif self._start + s + t > size:
            self._move_to_front()
        k_buffer, v_buffer = self._buffers
        k_buffer.narrow(2, self._start + s, t).copy_(k)
        v_buffer.narrow(2, self._start + s, t).copy_(v)
        k, v = k_buffer.narrow(2, self._start, s + t), v_buffer.narrow(2, self._start, s + t)
        drop = max(0, s + t - self.keep)
        self._start += drop
        self.k, self.v = k.narrow(2, drop, s + t - drop), v.narrow(2, drop, s + t - drop)
        return k, v

    def _hold_tail(self, k: Tensor, v: Tensor) -> None:
        """Hold the last ``keep`` of ``k``/``v`` ``(b, k, n, d)``: as views when autograd records
        (nothing may be overwritten), else copied into the buffer so ``k``/``v`` can be freed."""
        n = min(self.keep, k.shape[2])
        tail_k, tail_v = k.narrow(2, k.shape[2] - n, n), v.narrow(2, v.shape[2] - n, n)
        if k.requires_grad or v.requires_grad or self.keep == 0:
            self.k, self.v, self._buffers = tail_k, tail_v, None
            return
        b, h, _, d = k.shape
        if self._buffers is None or self._buffers[0].shape != (b, h, 2 * self.keep, d):
            self._buffers = k.new_empty(b, h, 2 * self.keep, d), v.new_empty(b, h, 2 * self.keep, d)
        self._start = 0
        self._buffers[0].narrow(2, 0, n).copy_(tail_k)
        self._buffers[1].narrow(2, 0, n).copy_(tail_v)
        self.k, self.v = (buffer.narrow(2, 0, n) for buffer in self._buffers)

    def _move_to_front(self) -> None:
        s = self.seq_len
        held = self.k.clone(), self.v.clone()  # source and destination may overlap
        for buffer, values in zip(self._buffers, held, strict=True):
            buffer.narrow(2, 0, s).copy_(values)
        self._start = 0
        self.k, self.v = (buffer.narrow(2, 0, s) for buffer in self._buffers)
