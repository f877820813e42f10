"""Attention masks. A mask returns a boolean tensor, True where a query may attend to a key,
broadcastable to [batch, heads, q, k], or None when it allows everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import ConfigDict, Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register


@dataclass
class MaskInfo:
    """What a mask may look at: query and key positions and which keys are real tokens."""

    q_pos: torch.Tensor  # [q]
    k_pos: torch.Tensor  # [k]
    key_padding: torch.Tensor | None  # [b, k] bool, True = real token
    prefix_len: torch.Tensor | None = None  # [b] prefix lengths for prefix_lm, when given per call


class Mask(nn.Module):
    """Base class of masks."""

    causal = False  # a pure causal mask: SDPA's is_causal fast path can replace it
    # A query never sees a later key (past a fixed prefix): what a decoder needs, so that a token
    # cannot see the one it predicts and the KV cache can keep earlier positions as they were.
    # Validation refuses a decoder none of whose masks has it.
    hides_future = False

    def forward(self, info: MaskInfo) -> torch.Tensor | None:
        raise NotImplementedError

    def generation_problem(self, start_len: int) -> str | None:
        """Why decoding that starts from ``start_len`` tokens cannot work with this mask, or None."""
        return None


def causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    return k_pos[None, :] <= q_pos[:, None]  # [q, k]


@register("mask", "causal")
class Causal(Mask):
    """A query sees only keys at its position or before (the decoder's future mask)."""

    causal = True
    hides_future = True

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()

    def forward(self, info: MaskInfo) -> torch.Tensor:
        return causal_mask(info.q_pos, info.k_pos)


@register("mask", "padding")
class Padding(Mask):
    """Keys at pad positions are hidden (from ``attention_mask``, else from ``pad_id``)."""

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()

    def forward(self, info: MaskInfo) -> torch.Tensor | None:
        if info.key_padding is None:
            return None
        return info.key_padding[:, None, None, :]  # [b, 1, 1, k]


def window_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    return (q_pos[:, None] - k_pos[None, :]).abs() < window  # [q, k]


@register("mask", "sliding_window")
class SlidingWindow(Mask):
    """A query sees keys less than ``window`` positions away (with causal: only behind)."""

    class Params(BlockParams):
        model_config = ConfigDict(json_schema_extra={"examples": [{"window": 4}]})
        window: PositiveInt

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.window = params.window

    def forward(self, info: MaskInfo) -> torch.Tensor:
        return window_mask(info.q_pos, info.k_pos, self.window)


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

    def forward(self, info: MaskInfo) -> torch.Tensor:
        seen = causal_mask(info.q_pos, info.k_pos)  # [q, k]
        if info.prefix_len is not None:
            in_prefix = info.k_pos[None, :] < info.prefix_len[:, None]  # [b, k]
            return seen | in_prefix[:, None, None, :]  # [b, 1, q, k]
        return seen | (info.k_pos < self.prefix_len)[None, :]
