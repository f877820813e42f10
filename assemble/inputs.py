"""Checks of what a model call receives: device, dtype and shape of every argument, one line each.

``keep_mask`` is the one reading of a padding mask, used by the models and by generation alike:
True / 1 / 1.0 is a real token, False / 0 / 0.0 is padding; any other value (an additive
``0 / -inf`` mask, which a plain cast would read inverted) is refused.
"""

from __future__ import annotations

import weakref

import torch

from .errors import ModelInputError

INTEGER_IDS = (torch.int64, torch.int32)


def describe(value: object) -> str:
    """A value as an error message shows it: a tensor's shape, else its type."""
    if isinstance(value, torch.Tensor):
        return "a nested tensor" if value.is_nested else str(tuple(value.shape))
    return type(value).__name__


def _eager(check_values: bool) -> bool:
    """Value checks cost a host sync: only in eager mode, and only when asked for."""
    return check_values and not torch.compiler.is_compiling()


def check_device(value: torch.Tensor, name: str, device: torch.device, owner: str,
                 error: type[ModelInputError] = ModelInputError, where: str = "") -> None:
    if value.device != device:
        raise error(f"{where}{name}: is on {value.device}, {owner} on {device}; move it with .to('{device}')")


def check_ids(ids: object, name: str, *, device: torch.device, max_len: int, vocab_size: int,
              offset: int = 0, batch: int | None = None, check_values: bool = True) -> None:
    """Token ids [b, t]: a long/int32 tensor on the model's device, of at most max_len positions
    (with ``offset`` cached), of ``batch`` rows when given, inside the vocabulary (eager mode)."""
    if not isinstance(ids, torch.Tensor) or ids.is_nested or ids.dim() != 2:
        raise ModelInputError(f"{name}: expected token ids of shape [batch, seq], got {describe(ids)}")
    if ids.dtype not in INTEGER_IDS:
        raise ModelInputError(f"{name}: token ids must be integers (torch.long or torch.int32), got {ids.dtype}")
    check_device(ids, name, device, "the model's weights")
    if batch is not None and ids.shape[0] != batch:
        raise ModelInputError(f"{name}: batch size {ids.shape[0]} does not match the source's {batch}")
    if offset + ids.shape[1] > max_len:
        cached = f" ({offset} cached + {ids.shape[1]} new)" if offset else ""
        raise ModelInputError(f"{name}: sequence length {offset + ids.shape[1]}{cached} exceeds max_len {max_len} "
                              "of the spec")
    if _eager(check_values) and ids.numel():
        low, high = int(ids.min()), int(ids.max())  # one host sync
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ModelInputError(f"{name}: token id {bad} is outside the vocabulary [0, {vocab_size})")


def keep_mask(mask: object, name: str, shape: tuple[int, int], device: torch.device, *, check_values: bool = True,
              error: type[ModelInputError] = ModelInputError, where: str = "") -> torch.Tensor:
    """A padding mask of ``shape`` as bool, True = a real token. Accepted: bool, integer 1/0 and float
    1.0/0.0 tensors on ``device``; with ``check_values`` (eager mode) any other value is refused."""
    if not isinstance(mask, torch.Tensor) or mask.is_nested:
        raise error(f"{where}{name}: expected a tensor of shape {shape}, got {describe(mask)}")
    if tuple(mask.shape) != tuple(shape):
        raise error(f"{where}{name}: shape {tuple(mask.shape)} does not match the ids, expected {tuple(shape)}")
    if mask.dtype.is_complex:
        raise error(f"{where}{name}: expected a bool, integer or float mask, got {mask.dtype}")
    check_device(mask, name, device, "the ids", error, where)
    if mask.dtype == torch.bool:
        return mask
    if _eager(check_values) and mask.numel():
        odd = mask[(mask != 0) & (mask != 1)]  # one host sync
        if odd.numel():
            raise error(f"{where}{name}: expected 1 = token, 0 = padding (or bool), got value {odd[0].item()}"
                        " (an additive 0 / -inf mask would read inverted; pass mask == 0 for one)")
    return mask != 0


def check_prefix_len(prefix_len: object, batch: int, device: torch.device, *,
                     check_values: bool = True) -> torch.Tensor | None:
    """prefix_len: None, an int, or an integer tensor of shape [] or [batch] -> [batch] (long) or None."""
    if prefix_len is None:
        return None
    if isinstance(prefix_len, int) and not isinstance(prefix_len, bool):
        if prefix_len < 0:
            raise ModelInputError(f"prefix_len: expected a length >= 0, got {prefix_len}")
        return torch.full((batch,), prefix_len, dtype=torch.long, device=device)
    if not isinstance(prefix_len, torch.Tensor) or prefix_len.is_nested or prefix_len.dim() > 1 or (
            prefix_len.dim() == 1 and prefix_len.shape[0] != batch):
        raise ModelInputError(f"prefix_len: expected an int or an integer tensor of shape ({batch},) (one length "
                              f"per row), got {describe(prefix_len)}")
    if prefix_len.dtype.is_floating_point or prefix_len.dtype.is_complex or prefix_len.dtype == torch.bool:
        raise ModelInputError(f"prefix_len: expected integer lengths, got {prefix_len.dtype}")
    check_device(prefix_len, "prefix_len", device, "the ids")
    if _eager(check_values) and prefix_len.numel():
        low = int(prefix_len.min())
        if low < 0:
            raise ModelInputError(f"prefix_len: expected lengths >= 0, got {low}")
    return prefix_len.long().expand(batch)


def check_memory(memory: object, padding: object, d_model: int, device: torch.device) -> None:
    """An encoder memory [b, s, d_model] (floats, on the model's device) and its key padding [b, s] (bool) or None."""
    if not isinstance(memory, torch.Tensor) or memory.is_nested or memory.dim() != 3 or memory.shape[2] != d_model:
        raise ModelInputError(f"memory: expected encoder states of shape [batch, src_len, {d_model}], "
                              f"got {describe(memory)}")
    if not memory.dtype.is_floating_point:
        raise ModelInputError(f"memory: expected floating-point encoder states, got {memory.dtype}")
    check_device(memory, "memory", device, "the model's weights")
    if padding is None:
        return
    expected = tuple(memory.shape[:2])
    if not isinstance(padding, torch.Tensor) or padding.is_nested or tuple(padding.shape) != expected \
            or padding.dtype != torch.bool:
        what = f"{describe(padding)} {padding.dtype}" if isinstance(padding, torch.Tensor) else describe(padding)
        raise ModelInputError(f"memory_padding: expected a bool tensor of shape {expected} (True = a real source "
                              f"token), got {what}")
    check_device(padding, "memory_padding", device, "the memory")


def bind_cache(cache: object, model: torch.nn.Module, n_layers: int, batch: int, device: torch.device,
               memory_len: int | None = None) -> None:
    """A model Cache of this model (bound to it on first use), of ``n_layers`` layers, holding ``batch``
    rows on ``device`` and as many positions as its offset says; cross keys of ``memory_len`` positions."""
    from .models import Cache

    if not isinstance(cache, Cache):
        raise ModelInputError(f"cache: expected a Cache from model.new_cache(), got {type(cache).__name__}")
    fresh = "; make a new one with model.new_cache()"
    owner = cache.owner() if cache.owner is not None else None
    if cache.owner is not None and owner is not model:
        raise ModelInputError(f"cache: it belongs to another model{fresh}")
    if len(cache.layers) != n_layers:
        raise ModelInputError(f"cache: holds {len(cache.layers)} layers, this model's decoder has {n_layers}{fresh}")
    # Layers append in order, so the first one shows the batch, the device and a call that failed midway.
    self_cache, cross_cache = cache.layers[0] if cache.layers else (None, None)
    for kind, layer_cache, length in (("self", self_cache, cache.offset), ("cross", cross_cache, memory_len)):
        k = getattr(layer_cache, "k", None)
        if not isinstance(k, torch.Tensor):
            continue
        if k.shape[0] != batch:
            raise ModelInputError(f"cache: holds {k.shape[0]} rows, the ids have {batch} (a cache serves one "
                                  f"batch){fresh}")
        if k.device != device:
            raise ModelInputError(f"cache: is on {k.device}, the ids on {device}{fresh}")
        if length is not None and k.dim() == 4 and k.shape[2] != length:
            what = f"the source has {length}" if kind == "cross" else f"its offset says {length}"
            raise ModelInputError(f"cache: layer 0 holds {k.shape[2]} {kind}-attention positions, {what} "
                                  f"(a call that failed midway, or another source?){fresh}")
    if cache.padding is not None and tuple(cache.padding.shape) != (batch, cache.offset):
        raise ModelInputError(f"cache: holds key padding of shape {tuple(cache.padding.shape)}, expected "
                              f"{(batch, cache.offset)}{fresh}")
    if cache.owner is None:
        cache.owner = weakref.ref(model)
