"""A KV cache for generation that writes each step into preallocated buffers.

``LayerCache`` concatenates the cached keys/values with the new ones at every step,
copying the whole cache each time; here the buffers have room for the whole generation
(grown by doubling if a caller goes past it) and each step writes only its new positions.
Used only without autograd (inside ``generation_mode``), where in-place writes are safe.
"""

from __future__ import annotations

import torch

from stackform.blocks import LayerCache

from ..models import Cache


class BufferedLayerCache(LayerCache):
    """Self-attention keys/values of one layer in buffers of ``capacity`` positions."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None  # [b, kv, capacity, hd]
        self._v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        if self._k is None or end > self._k.shape[2]:
            self._resize(k, max(self.capacity, end, 2 * self.length))
        self._k[:, :, self.length : end] = k
        self._v[:, :, self.length : end] = v
        self.length = end
        self.k, self.v = self._k[:, :, :end], self._v[:, :, :end]  # [b, kv, t, hd] views
        return self.k, self.v

    def _resize(self, like: torch.Tensor, capacity: int) -> None:
        b, kv, _, hd = like.shape
        k, v = like.new_empty(b, kv, capacity, hd), like.new_empty(b, kv, capacity, hd)  # [b, kv, cap, hd]
        if self._k is not None:
            k[:, :, : self.length], v[:, :, : self.length] = self.k, self.v
        self._k, self._v = k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search); copies only the filled positions."""
        if self._k is None:
            return
        k = self._k.new_empty(len(index), *self._k.shape[1:])  # [b', kv, cap, hd]
        v = self._v.new_empty(len(index), *self._v.shape[1:])
        k[:, :, : self.length] = self.k.index_select(0, index)
        v[:, :, : self.length] = self.v.index_select(0, index)
        self._k, self._v = k, v
        self.k, self.v = k[:, :, : self.length], v[:, :, : self.length]


def generation_cache(n_layers: int, capacity: int) -> Cache:
    """A model cache whose self-attention caches are buffered; cross-attention caches are plain
    (they are written once, from the encoder's memory)."""
    return Cache([(BufferedLayerCache(capacity), LayerCache()) for _ in range(n_layers)])
