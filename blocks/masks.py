"""Attention masks. A mask says which keys a query may see as a function of positions,
``allowed(b, h, q_idx, kv_idx, info) -> bool tensor`` in the vocabulary of FlexAttention's
``mask_mod``, written with tensor ops so that it also works on broadcast index grids. It declares
what the kernels may exploit (``causal``, ``window``, ``max_ahead``, ``relative``, what it reads);
the stack ANDs the masks once per forward and a dispatcher (``blocks/kernels``) picks the kernel.

``q_idx`` and ``kv_idx`` are positions in the row (with a KV cache, the query's counts the cached
tokens); ``b`` and ``h`` index the batch and the heads. Each is an integer tensor; they broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import ConfigDict, Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register


@dataclass
class MaskInfo:
    """What a mask may look at besides positions: which keys are real tokens, per-call prefixes, documents."""

    q_pos: torch.Tensor  # [q] row positions of the queries
    k_pos: torch.Tensor  # [k] row positions of the keys
    key_padding: torch.Tensor | None  # [b, k] bool, True = real token
    prefix_len: torch.Tensor | None = None  # [b] prefix lengths for prefix_lm, when given per call
    documents: torch.Tensor | None = None  # [b, k] document id of every key position (packed sequences)
    # [b, q] document id of every query when the queries are another sequence than the keys
    # (cross-attention of packed pairs: the decoder's ids against the encoder's); None: ``documents``
    query_documents: torch.Tensor | None = None


class Mask(nn.Module):
    """Base class of masks: define ``allowed``; declare the properties below when they hold."""

    causal = False  # exactly the causal mask: SDPA's is_causal fast path can replace it
    # A query never sees a later key (past a fixed prefix): what a decoder needs, so that a token
    # cannot see the one it predicts and the KV cache can keep earlier positions as they were.
    # Validation refuses a decoder none of whose masks has it.
    hides_future = False
    window: int | None = None  # allowed only where |q_idx - kv_idx| < window (block-local kernels)
    max_ahead: int | None = None  # allowed only where kv_idx - q_idx <= max_ahead (0: no later key)
    relative = False  # allowed depends on kv_idx - q_idx (and h) only: computed once, shifted per chunk
    uses_padding = False  # reads info.key_padding (the model then derives it from pad_id when not given)
    uses_documents = False  # reads info.documents

    def allowed(self, b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor,
                info: MaskInfo) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no allowed(b, h, q_idx, kv_idx, info)")

    def active(self, info: MaskInfo) -> bool:
        """Whether the mask hides anything in this call (padding without padding does not)."""
        return True

    def forward(self, info: MaskInfo) -> torch.Tensor:
        """The dense mask, True = may attend, broadcastable to [b, h, q, k] (evaluated on the index grid)."""
        q, k = info.q_pos[:, None], info.k_pos[None, :]  # [q, 1], [1, k]
        zero = torch.zeros((), dtype=torch.long, device=q.device)
        return self.allowed(batch_index(info), zero, q, k, info)

    def generation_problem(self, start_len: int) -> str | None:
        """Why decoding that starts from ``start_len`` tokens cannot work with this mask, or None."""
        return None


def batch_index(info: MaskInfo) -> torch.Tensor:
    """``b`` for a grid evaluation: [b, 1, 1, 1] when the call carries per-row data, else a 0 scalar."""
    rows = next((t for t in (info.key_padding, info.prefix_len, info.documents) if t is not None), None)
    if rows is None:
        return torch.zeros((), dtype=torch.long, device=info.q_pos.device)
    return torch.arange(rows.shape[0], device=rows.device)[:, None, None, None]


def causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    return k_pos[None, :] <= q_pos[:, None]  # [q, k]


@register("mask", "causal")
class Causal(Mask):
    """A query sees only keys at its position or before (the decoder's future mask)."""

    causal = True
    hides_future = True
    max_ahead = 0
    relative = True

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()

    def allowed(self, b, h, q_idx, kv_idx, info):
        return kv_idx <= q_idx


@register("mask", "padding")
class Padding(Mask):
    """Keys at pad positions are hidden (from ``attention_mask``, else from ``pad_id``)."""

    uses_padding = True

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()

    def active(self, info: MaskInfo) -> bool:
        return info.key_padding is not None

    def allowed(self, b, h, q_idx, kv_idx, info):
        return info.key_padding[b, kv_idx]


class Window(Mask):
    """Keys less than ``window`` positions away (an attention layer's own ``window``; not registered)."""

    relative = True

    def __init__(self, window: int):
        super().__init__()
        self.window = window
        self.max_ahead = window - 1

    def allowed(self, b, h, q_idx, kv_idx, info):
        return (q_idx - kv_idx).abs() < self.window


@register("mask", "sliding_window")
class SlidingWindow(Window):
    """A query sees keys less than ``window`` positions away (with causal: only behind)."""

    class Params(BlockParams):
        model_config = ConfigDict(json_schema_extra={"examples": [{"window": 4}]})
        window: PositiveInt

    def __init__(self, dims: Dims, params: Params):
        super().__init__(params.window)


@register("mask", "prefix_lm")
class PrefixLM(Mask):
    """Bidirectional over the first ``prefix_len`` tokens, causal after (T5's prefix LM, UniLM)."""

    hides_future = True

    class Params(BlockParams):
        model_config = ConfigDict(json_schema_extra={"examples": [{"prefix_len": 3}]})
        prefix_len: int = Field(0, ge=0, description="fixed prefix; a per-call prefix_len overrides it")

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.prefix_len = params.prefix_len

    def generation_problem(self, start_len: int) -> str | None:
        if start_len >= self.prefix_len:
            return None
        return (f"the prefix_lm mask's prefix_len ({self.prefix_len}) is longer than the {start_len} token(s) "
                "decoding starts from; generated tokens cannot join the bidirectional prefix (earlier positions "
                "would have to see them), so start from the whole prefix")

    def allowed(self, b, h, q_idx, kv_idx, info):
        prefix = info.prefix_len[b] if info.prefix_len is not None else self.prefix_len
        return (kv_idx <= q_idx) | (kv_idx < prefix)


@register("mask", "document")
class Document(Mask):
    """A query sees only keys of its own document (packed sequences: ``document_ids`` of the call).

    Added by the stack whenever a call carries document ids and no mask of the spec reads them. In
    cross-attention the queries' ids (``info.query_documents``, the decoder's) are compared with the
    keys' (the encoder's): a target sees only its own source."""

    uses_documents = True

    def __init__(self, dims: Dims | None = None, params: BlockParams | None = None):
        super().__init__()

    def active(self, info: MaskInfo) -> bool:
        return info.documents is not None

    def allowed(self, b, h, q_idx, kv_idx, info):
        queries = info.query_documents if info.query_documents is not None else info.documents
        return queries[b, q_idx] == info.documents[b, kv_idx]
