"""Padded batches for generation: every row is generated as if it were alone.

A padding mask (read by ``keep_mask``, as the models read it) marks each row's real tokens.
They are packed to the front of the row, so the first real token sits at position 0 and no
pad lies between real tokens: learned, sinusoidal and rotary positions count from the first
real token, and relative / ALiBi biases see true distances. Decoders then feed the rows of
different lengths in step: the shortest prompt is run at once, and a longer row's remaining
prompt tokens are fed one per step in place of sampled ones (forced), so no position depends
on another row. The result is laid back out where each row's tokens were.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..inputs import keep_mask
from .checks import GenerationError


@dataclass
class Packed:
    """Rows with their real tokens first."""

    ids: torch.Tensor  # [b, t] real tokens first, then the row's pads
    lengths: list[int]  # real tokens per row
    ends: list[int]  # per row, the column after its last real token in the given layout
    keep: torch.Tensor | None  # [b, t] the given mask as bool, None when none was given

    def packed_keep(self) -> torch.Tensor | None:
        """The mask of the packed rows [b, t] (real tokens first), None when none was given."""
        if self.keep is None:
            return None
        lengths = torch.tensor(self.lengths, device=self.ids.device)[:, None]  # [b, 1]
        return torch.arange(self.ids.shape[1], device=self.ids.device)[None, :] < lengths


def pack(where: str, name: str, ids: torch.Tensor, mask: object) -> Packed:
    """``ids`` [b, t] and its padding mask -> the packed rows (one host sync); a row without a real token
    is a GenerationError, like an empty prompt."""
    b, t = ids.shape
    if mask is None:
        return Packed(ids, [t] * b, [t] * b, None)
    keep = keep_mask(mask, name, (b, t), ids.device, error=GenerationError, where=f"{where}: ")
    order = (~keep).to(torch.int8).argsort(dim=1, stable=True)  # [b, t] real columns first, in order
    last = t - keep.flip(1).to(torch.int8).argmax(dim=1)  # [b] one past the last real column
    lengths, ends = keep.sum(dim=1).tolist(), last.tolist()
    for row, n in enumerate(lengths):
        if n == 0:
            raise GenerationError(f"{where}: {name} row {row} holds no real token; give at least one per row")
    return Packed(ids.gather(1, order), lengths, ends, keep)


def lay_out(packed: Packed, prompt: torch.Tensor, seq: torch.Tensor, generated: list[int], fill: int) -> torch.Tensor:
    """Packed rows ``seq`` [b, T] back in the prompt's layout: a row's prompt columns up to its last real
    token as given, then its ``generated`` new tokens, then ``fill``."""
    lengths = torch.tensor(packed.lengths, device=seq.device)[:, None]  # [b, 1]
    ends = torch.tensor(packed.ends, device=seq.device)[:, None]
    news = torch.tensor(generated, device=seq.device)[:, None]
    width = max(e + g for e, g in zip(packed.ends, generated))
    cols = torch.arange(width, device=seq.device)[None, :]  # [1, W]
    t = prompt.shape[1]
    given = torch.full((prompt.shape[0], width), fill, dtype=torch.long, device=seq.device)  # [b, W]
    given[:, : min(t, width)] = prompt[:, :width]
    out = torch.where(cols < ends, given, fill)
    source = (lengths + cols - ends).clamp(0, seq.shape[1] - 1)  # [b, W] column in the packed rows
    new = (cols >= ends) & (cols < ends + news)
    return torch.where(new, seq.gather(1, source), out)
