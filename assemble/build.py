"""spec -> model: ``assemble()`` builds an encoder, decoder or encoder-decoder from registered blocks."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Callable

import torch
from torch import nn

from stackform import registry
from stackform.blocks import Stack, TokenEmbedding, TransformerLayer, init_weights
from stackform.registry import Dims
from stackform.specs import BlockSpec, ModelSpec, Spec, load_spec

from .errors import ModelInputError
from .models import DecoderModel, EncoderDecoderModel, EncoderModel, StackformModel


def dims_of(model: ModelSpec, side: str, causal: bool) -> Dims:
    """The Dims every block of one stack receives."""
    return Dims(
        d_model=model.d_model, n_heads=model.n_heads, head_dim=model.head_dim_value(), max_len=model.max_len,
        n_layers=model.n_layers_of(side), vocab_size=model.vocab_size, dropout=model.dropout, causal=causal,
    )


def build_block(block: BlockSpec, dims: Dims, **inject: Any) -> nn.Module:
    """Instantiate a registered block: ``cls(dims, params, **injected pieces)``."""
    return block.entry.cls(dims, block.params, **inject)


def _layer_key(layer: Any) -> str:
    """A text that equal layer plans share (their blocks, dumped)."""
    return json.dumps({k: (v.model_dump() if v is not None else None) for k, v in vars(layer).items()},
                      sort_keys=True, default=str)


def distinct_layers(model: ModelSpec) -> int:
    """How many layers ``build_model(spec, sample=True)`` builds: distinct layer plans, all stacks."""
    return sum(len({_layer_key(layer) for layer, _ in model.plan(side).groups}) for side in model.sides)


def build_stack(model: ModelSpec, side: str, causal: bool, cross: bool, sample: bool = False) -> Stack:
    """One stack of layers with its positional module, masks and final norm.

    ``sample=True`` builds one layer per distinct layer plan and records on the stack
    ``layer_runs``: ``[(built layer index, first layer, repeat), ...]`` (see ``assemble.size``).
    """
    plan = model.plan(side)
    dims = dims_of(model, side, causal)
    positional = build_block(plan.positional, dims)
    if plan.masks is not None:
        masks = [build_block(m, dims) for m in plan.masks]
    else:
        default = "causal" if causal else "padding"
        masks = [registry.get("mask", default).cls(dims, registry.BlockParams())]

    def norm_factory(norm: BlockSpec) -> Callable[[], nn.Module]:
        return lambda: build_block(norm, dims)

    layers, runs, built = [], [], {}
    plans = plan.layers
    if sample:
        first = 0
        for layer, repeat in plan.groups:
            index = built.setdefault(_layer_key(layer), len(built))
            if index == len(layers):
                layers.append(layer)
            runs.append((index, first, repeat))
            first += repeat
        plans, layers = layers, []
    own_positionals: dict[str, nn.Module] = {}  # a layer's own positional, one module per distinct block
    layer_positionals = []
    for layer in plans:
        key = json.dumps(layer.positional.model_dump(), sort_keys=True) if layer.positional is not None else None
        if key is not None and key not in own_positionals:
            own_positionals[key] = build_block(layer.positional, dims)
        layer_positionals.append(own_positionals.get(key) if key is not None else None)
        res = lambda: build_block(layer.residual, dims, norm=norm_factory(layer.norm))  # noqa: E731
        parts = dict(self_attn=build_block(layer.attention, dims), self_res=res(),
                     ffn=build_block(layer.ffn, dims), ffn_res=res())
        if cross:
            cross_dims = dims.with_(causal=False)
            parts["cross_attn"] = build_block(layer.cross_attention or layer.attention, cross_dims, cross=True)
            parts["cross_res"] = res()
        layers.append(TransformerLayer(**parts))
    wants_final = plan.final_norm if plan.final_norm is not None else getattr(plan.residual.entry.cls, "final_norm", True)
    final = build_block(plan.norm, dims) if wants_final else None
    stack = Stack(layers, positional, masks, final, n_heads=dims.n_heads, layer_positionals=layer_positionals)
    if sample:
        stack.layer_runs = runs
    return stack


def _embedding(model: ModelSpec, side: str) -> TokenEmbedding:
    dims = dims_of(model, side, causal=False)
    token_types = build_block(model.token_type, dims) if model.token_type is not None else None
    norm = build_block(model.embedding_norm, dims) if model.embedding_norm is not None else None
    return TokenEmbedding(model.vocab_size, model.d_model, model.dropout, model.scale_embeddings, token_types, norm)


def _head(model: ModelSpec, side: str, embed: TokenEmbedding) -> nn.Module:
    dims = dims_of(model, side, causal=False)
    return build_block(model.head, dims, tied=embed.weight if model.tie_embeddings else None)


def build_model(spec: Spec, sample: bool = False) -> StackformModel:
    """Build the model a validated spec describes (on the current default device).

    ``sample=True`` builds one layer per distinct layer plan of each stack (for sizes by
    arithmetic on the meta device: ``assemble.size``), not a model to run.
    """
    model = spec.model
    if model.kind == "encoder_decoder":
        src_embed = _embedding(model, "encoder")
        tgt_embed = src_embed if model.share_embeddings else _embedding(model, "decoder")
        encoder = build_stack(model, "encoder", causal=False, cross=False, sample=sample)
        decoder = build_stack(model, "decoder", causal=True, cross=True, sample=sample)
        head = _head(model, "decoder", tgt_embed)
        net: StackformModel = EncoderDecoderModel(spec, src_embed, tgt_embed, encoder, decoder, head)
        n_layers = max(model.n_layers_of("encoder"), model.n_layers_of("decoder"))
    else:
        embed = _embedding(model, model.kind)
        stack = build_stack(model, model.kind, causal=model.kind == "decoder", cross=False, sample=sample)
        head = _head(model, model.kind, embed)
        cls = DecoderModel if model.kind == "decoder" else EncoderModel
        net = cls(spec, embed, stack, head)
        n_layers = model.n_layers_of(model.kind)
    init_weights(net, model.init, model.init_std, n_layers)
    return net


def _kwarg_overrides(fields: dict[str, Any]) -> list[tuple[str, Any]]:
    """``d_model=256`` -> ``model.d_model``; ``train__steps=5`` -> ``train.steps``."""
    out = []
    for key, value in fields.items():
        dotted = key.replace("__", ".")
        if "." not in dotted and key in ModelSpec.model_fields:
            dotted = f"model.{key}"
        out.append((dotted, value))
    return out


def as_device(device: object, where: str) -> torch.device:
    """``device`` as a torch.device, or a ModelInputError naming ``where`` it came from."""
    try:
        out = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelInputError(f"{where}: {device!r} is not a torch device (cpu, cuda, cuda:1, meta, ...)") from None
    if out.type not in ("cpu", "meta"):
        try:  # a device torch knows by name but this machine lacks (cuda on a CPU build, cuda:7 of 1)
            torch.empty(0, device=out)
        except (AssertionError, RuntimeError) as exc:
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0].split(". ")[0][:120]
            raise ModelInputError(f"{where}: {str(out)!r} is not available here ({reason})") from None
    return out


def assemble(
    spec: "str | os.PathLike | dict | Spec",
    *,
    overrides: list[str] | tuple[str, ...] = (),
    device: "str | torch.device | None" = None,
    dtype: torch.dtype | None = None,
    seed: int | None = None,
    allow_large: bool = False,
    **fields: Any,
) -> StackformModel:
    """Build a model from a spec path, zoo name, dict or Spec.

    ``overrides`` are dotted strings (``"model.d_model=256"``); keyword ``fields``
    set model fields directly (``d_model=256``, ``train__steps=5``). ``device="meta"``
    builds without allocating memory. A model whose parameters and buffers cannot fit the
    memory of the device it is built on (RAM, or the CUDA device's) is refused before anything
    is allocated, naming the spec key to lower; ``allow_large=True`` builds it anyway.
    Bad input raises a StackformError.
    """
    from stackform.specs.load import read_source, validate_source
    from stackform.specs.overrides import apply_override, apply_value, check_overrides

    check_overrides(overrides)
    given = spec
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ModelInputError(f"assemble(dtype=...): {dtype!r} is not a floating-point torch dtype (torch.bfloat16, ...)")
    if fields or overrides or not isinstance(spec, Spec):
        src = read_source(spec.model_dump(mode="json") if isinstance(spec, Spec) else spec)
        for text in overrides:
            src = apply_override(src, text)
        for dotted, value in _kwarg_overrides(fields):
            src = apply_value(src, dotted, value)
        spec = validate_source(src)
    if seed is not None:
        torch.manual_seed(seed)
    target = as_device(device, "assemble(device=...)") if device is not None else torch.get_default_device()
    if not allow_large:
        from .size import check_model_fits, locate

        check_model_fits(spec, target, lambda key: locate(given, overrides, key))
    with target if device is not None else contextlib.nullcontext():
        net = build_model(spec)
    if dtype is not None:
        net = net.to(dtype)
    return net
