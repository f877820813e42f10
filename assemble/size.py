"""Sizes of the model a spec describes, by arithmetic, before anything is allocated.

``sample_model`` builds on the meta device (no memory) one layer per distinct layer plan
of each stack, whatever its blocks are (plugins included), and remembers how many layers
each built one stands for. From that, tensor names, shapes, dtypes, parameter counts and
bytes follow by multiplication: a 10**6-layer spec is sized in the time of one layer.
``check_fits`` refuses, naming the spec key, a model that cannot fit this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from stackform.blocks import Stack
from stackform.registry import StackformError
from stackform.specs import Spec


class ModelSizeError(StackformError, ValueError):
    """A spec whose model cannot be built (sizes overflow) or cannot fit this machine."""


@dataclass
class SampledModel:
    """A meta-device model with one layer per distinct layer plan, and the layers each stands for."""

    model: nn.Module
    # "stack.layers." -> [(built index, first layer, repeat), ...] in layer order
    runs: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)

    def repeats(self, name: str) -> int:
        """How many layers of the real model the built tensor or module ``name`` stands for."""
        for prefix, runs in self.runs.items():
            if name.startswith(prefix):
                index = int(name[len(prefix):].split(".", 1)[0])
                return sum(repeat for built, _, repeat in runs if built == index)
        return 1

    def state(self) -> Iterator[tuple[str, tuple[int, ...], torch.dtype]]:
        """(name, shape, dtype) of every entry of the real model's ``state_dict`` (tied aliases too)."""
        state = self.model.state_dict(keep_vars=True)
        for name, tensor in state.items():
            prefix = next((p for p in self.runs if name.startswith(p)), None)
            if prefix is None:
                yield name, tuple(tensor.shape), tensor.dtype
                continue
            index, rest = name[len(prefix):].split(".", 1)
            for built, first, repeat in self.runs[prefix]:
                if built == int(index):
                    for layer in range(first, first + repeat):
                        yield f"{prefix}{layer}.{rest}", tuple(tensor.shape), tensor.dtype

    def state_count(self) -> int:
        """Entries of the real model's ``state_dict``, by arithmetic."""
        return sum(self.repeats(name) for name in self.model.state_dict(keep_vars=True))

    def parameters(self) -> int:
        """Parameters of the real model, tied weights once."""
        return sum(p.numel() * self.repeats(n) for n, p in self.model.named_parameters())

    def layers(self) -> int:
        """Layers of the real model, all stacks together."""
        return sum(repeat for runs in self.runs.values() for _, _, repeat in runs)

    def key_of(self, name: str) -> str:
        """The spec key that sizes the tensor ``name`` (for messages that say what to lower)."""
        prefix = next((p for p in self.runs if name.startswith(p)), None)
        if prefix is not None:
            if self.layers() > MANY_LAYERS:
                return "model.n_layers"
            part = name[len(prefix):].split(".")[1] if name.count(".") > prefix.count(".") else ""
            return _SUBLAYER_KEYS.get(part, "model.layers")
        if ".positional." in f".{name}.":
            return "model.max_len"
        if "embed" in name.split(".")[0] or name.split(".")[0] == "head":
            return "model.vocab_size"
        return "model.d_model"

    def by_key(self, named: Iterable[tuple[str, torch.Tensor]], as_bytes: bool = True) -> dict[str, int]:
        """Bytes (or numbers) of ``named`` tensors of the sample, scaled to the real model, by spec key."""
        parts: dict[str, int] = {}
        for name, tensor in named:
            key = self.key_of(name)
            size = tensor.numel() * (tensor.element_size() if as_bytes else 1) * self.repeats(name)
            parts[key] = parts.get(key, 0) + size
        return parts

    def bytes_by_part(self) -> dict[str, int]:
        """Bytes of parameters and buffers (non-persistent tables too), by the spec key that sizes them."""
        return self.by_key(list(self.model.named_parameters()) + list(self.model.named_buffers()))


MANY_LAYERS = 256  # above this many layers, their count is what a message names (GPT-3 has 96)
_SUBLAYER_KEYS = {"self_attn": "model.attention", "cross_attn": "model.cross_attention", "ffn": "model.ffn",
                  "self_res": "model.norm", "cross_res": "model.norm", "ffn_res": "model.norm", "norm": "model.norm",
                  "attn_norm": "model.norm", "cross_norm": "model.norm", "ffn_norm": "model.norm"}


def sample_model(spec: Spec, where: str) -> SampledModel:
    """Build ``spec``'s sample on the meta device; sizes torch cannot represent are one ModelSizeError."""
    from .build import build_model

    try:
        with torch.device("meta"):
            model = build_model(spec, sample=True)
    except (RuntimeError, ValueError, OverflowError, MemoryError, ArithmeticError, IndexError, TypeError) as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0][:160]
        raise ModelSizeError(f"{where}: the model this spec describes cannot be built ({reason})") from None
    runs = {f"{name}.layers.": module.layer_runs for name, module in model.named_modules()
            if isinstance(module, Stack) and hasattr(module, "layer_runs")}
    return SampledModel(model, runs)


def machine_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what) of the memory a model on ``device`` can use: device memory on CUDA, RAM otherwise."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return int(props.total_memory), f"{device} memory"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"
    except (ValueError, OSError, AttributeError):  # no sysconf: assume it fits
        return 1 << 62, "RAM"


def human_bytes(n: float) -> str:
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


FORCE_HINT = "pass --force-size (allow_large=True in Python) to build it anyway"


def check_fits(parts: dict[str, int], device: torch.device, what: str, where: "str | Callable[[str], str]",
               key_hint: str = "", force_hint: str = FORCE_HINT) -> None:
    """Refuse (ModelSizeError naming the largest part's spec key) when ``parts`` exceed the machine's memory.

    ``where`` prefixes the message: a text, or a function of the key (its file:line:col).
    """
    if device.type == "meta":
        return
    total = sum(parts.values())
    memory, label = machine_memory(device)
    if total <= memory:
        return
    key = max(parts, key=lambda k: parts[k])
    prefix = where(key) if callable(where) else where
    shown = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)
    raise ModelSizeError(f"{prefix}{key}: {what} needs {human_bytes(total)} ({shown}) but this machine has "
                         f"{human_bytes(memory)} of {label}; lower {key}{key_hint}, or {force_hint}")


def locate(spec_like: object, overrides: "Sequence[str]", key: str) -> str:
    """``file:line:col: `` of ``key`` (dotted) in the spec as written, or its closest written parent; '' if unknown."""
    from stackform.specs import SpecError
    from stackform.specs.load import read_source
    from stackform.specs.overrides import apply_override

    if not isinstance(spec_like, (str, os.PathLike)):
        return ""
    try:
        src = read_source(spec_like)
        for text in overrides:
            src = apply_override(src, text)
    except SpecError:
        return ""
    place = src.where(tuple(key.split(".")))
    return f"{place[0]}:{place[1]}:{place[2]}: " if place and place[1] else (f"{place[0]}: " if place else "")


def model_parts(spec: Spec, where: str) -> dict[str, int]:
    """Bytes of the built model (parameters and buffers), by spec key, from a meta-device sample."""
    return sample_model(spec, where).bytes_by_part()


def training_parts(spec: Spec, device: torch.device, where: str) -> dict[str, int]:
    """Bytes one training process needs (``inspect.training_memory``: fp32 weights, gradients, AdamW
    moments, activations at train.batch_size x seq_len; plus buffers), by the spec key to lower."""
    from .inspect import training_memory

    sample = sample_model(spec, where)
    world = max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    precision = spec.train.precision if spec.train.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    seq = spec.train.seq_len or spec.model.max_len
    batch = max(1, spec.train.batch_size // world)
    memory = training_memory(sample.model, batch, seq, precision, sample.repeats)
    shards = world if spec.train.parallel == "fsdp" else 1
    params = sample.by_key(sample.model.named_parameters())
    parts = {key: 4 * value // shards for key, value in params.items()}  # weights + gradients + 2 moments = 4x
    for key, value in sample.by_key(sample.model.named_buffers()).items():
        parts[key] = parts.get(key, 0) + value
    key = "model.n_layers" if sample.layers() > MANY_LAYERS else "train.batch_size"
    parts[key] = parts.get(key, 0) + memory["activations"]
    return parts


Where = "str | Callable[[str], str]"


def check_model_fits(spec: Spec, device: torch.device, where: Where = "") -> None:
    """ModelSizeError when building ``spec`` on ``device`` cannot fit its memory (meta always fits)."""
    if device.type == "meta":
        return
    check_fits(model_parts(spec, spec.name), device, "building this model", where)


def check_training_fits(spec: Spec, device: torch.device, where: Where = "") -> None:
    """ModelSizeError when one training step of ``spec`` cannot fit ``device``'s memory."""
    if device.type == "meta":
        return
    parts = training_parts(spec, device, spec.name)
    hint = " or train.seq_len" if max(parts, key=lambda k: parts[k]) == "train.batch_size" else ""
    check_fits(parts, device, "training this model", where, hint)
