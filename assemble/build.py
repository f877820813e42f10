"""spec -> model: ``assemble()`` builds an encoder, decoder or encoder-decoder from registered blocks."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import torch
from torch import nn

from stackform import registry
from stackform.blocks import LayerParts, Stack, TokenEmbedding, init_weights, stack_final_norm
from stackform.registry import Dims
from stackform.specs import BlockSpec, ModelSpec, Spec, load_spec

from .errors import ModelInputError
from .models import DecoderModel, EncoderDecoderModel, EncoderModel, StackformModel


def dims_of(model: ModelSpec, side: str, causal: bool) -> Dims:
    """The Dims every block of one stack receives (``layer`` and ``role`` set per block)."""
    return Dims(
        d_model=model.d_model, n_heads=model.n_heads, head_dim=model.head_dim_value(), max_len=model.max_len,
        n_layers=model.n_layers_of(side), vocab_size=model.vocab_size, dropout=model.dropout, causal=causal,
        side=side,
    )


def build_block(block: BlockSpec, dims: Dims, **inject: Any) -> nn.Module:
    """Instantiate a registered block: ``cls(dims, params, **injected pieces)``; the block keeps its
    params and dims as ``block_params`` and ``block_dims`` (``blocks.protocol.describe`` reads them)."""
    module = block.entry.cls(dims, block.params, **inject)
    module.block_params, module.block_dims = block.params, dims
    return module


def _default_layer() -> tuple[type, registry.BlockParams]:
    entry = registry.get("layer", "sequential")  # a spec without ``layer:``, as before layers were a kind
    return entry.cls, entry.params()


def build_layer(layer: Any, dims: Dims, index: int, cross: bool) -> nn.Module:
    """One layer of the kind ``layer.layer`` names (sequential by default), from its LayerPlan."""
    at = dims.with_(layer=index)

    def residual(name: str | None) -> nn.Module:
        spec = layer.residual
        norm = lambda: build_block(layer.norm, at.with_(role="norm"))  # noqa: E731
        if name is not None and name != spec.type:
            entry = registry.get("residual", name)
            module = entry.cls(at.with_(role="residual"), entry.params(), norm=norm)
            module.block_params, module.block_dims = entry.params(), at.with_(role="residual")
            return module
        return build_block(spec, at.with_(role="residual"), norm=norm)

    cross_attention = None
    if cross:
        cross_dims = at.with_(causal=False, role="cross_attention")
        cross_attention = lambda: build_block(layer.cross_attention or layer.attention, cross_dims, cross=True)  # noqa: E731
    parts = LayerParts(
        attention=lambda: build_block(layer.attention, at.with_(role="self_attention")),
        ffn=lambda: build_block(layer.ffn, at.with_(role="ffn")),
        norm=lambda: build_block(layer.norm, at.with_(role="norm")),
        residual=residual, cross_attention=cross_attention,
    )
    if layer.layer is not None:
        return build_block(layer.layer, at.with_(role="layer"), parts=parts)
    cls, params = _default_layer()
    module = cls(at.with_(role="layer"), params, parts=parts)
    module.block_params, module.block_dims = params, at.with_(role="layer")
    return module


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
    positional = build_block(plan.positional, dims.with_(role="positional"))
    if plan.masks is not None:
        masks = [build_block(m, dims.with_(role="mask")) for m in plan.masks]
    else:
        default = "causal" if causal else "padding"
        masks = [registry.get("mask", default).cls(dims.with_(role="mask"), registry.BlockParams())]

    layers, runs, built = [], [], {}
    plans = list(enumerate(plan.layers))
    if sample:
        first = 0
        for layer, repeat in plan.groups:
            index = built.setdefault(_layer_key(layer), len(built))
            if index == len(layers):
                layers.append((first, layer))
            runs.append((index, first, repeat))
            first += repeat
        plans, layers = layers, []
    own_positionals: dict[str, nn.Module] = {}  # a layer's own positional, one module per distinct block
    layer_positionals = []
    for index, layer in plans:
        key = json.dumps(layer.positional.model_dump(), sort_keys=True) if layer.positional is not None else None
        if key is not None and key not in own_positionals:
            own_positionals[key] = build_block(layer.positional, dims.with_(role="positional"))
        layer_positionals.append(own_positionals.get(key) if key is not None else None)
        layers.append(build_layer(layer, dims, index, cross))
    if plan.final_norm is not None:
        wants_final = plan.final_norm
    else:
        kind, params = (plan.layer.entry.cls, plan.layer.params) if plan.layer is not None else _default_layer()
        wants_final = stack_final_norm(kind, params, plan.residual.entry.cls)
    final = build_block(plan.norm, dims.with_(role="norm")) if wants_final else None
    stack = Stack(layers, positional, masks, final, n_heads=dims.n_heads, layer_positionals=layer_positionals)
    if sample:
        stack.layer_runs = runs
    return stack


def _embedding(model: ModelSpec, side: str) -> TokenEmbedding:
    dims = dims_of(model, side, causal=False).with_(role="embedding")
    token_types = build_block(model.token_type, dims) if model.token_type is not None else None
    norm_spec = model.side(side).embedding_norm or model.embedding_norm
    norm = build_block(norm_spec, dims) if norm_spec is not None else None
    return TokenEmbedding(model.vocab_size, model.d_model, model.dropout, model.scale_embeddings, token_types, norm)


def _target_embedding(model: ModelSpec, src_embed: TokenEmbedding) -> TokenEmbedding:
    """The decoder's embedding: its own, the encoder's (share_embeddings), or, when shared but a side has
    its own ``embedding_norm`` (BART), one token table with a norm per side."""
    if not model.share_embeddings:
        return _embedding(model, "decoder")
    if all(model.side(side).embedding_norm is None for side in model.sides):
        return src_embed
    tgt_embed = _embedding(model, "decoder")
    tgt_embed.weight = src_embed.weight  # one table, stored once
    tgt_embed.token_types = src_embed.token_types
    return tgt_embed


def _head(model: ModelSpec, side: str, embed: TokenEmbedding) -> nn.Module:
    dims = dims_of(model, side, causal=False).with_(role="head")
    return build_block(model.head, dims, tied=embed.weight if model.tie_embeddings else None)


def _adapters(model, spec: Spec) -> None:
    """``train.lora``: the registered adapters on the layers it names (assemble/train/lora.py)."""
    if spec.train.lora is not None:
        from .train.lora import apply_lora

        apply_lora(model, spec)


def build_model(spec: Spec, sample: bool = False) -> StackformModel:
    """Build the model a validated spec describes (on the current default device).

    ``sample=True`` builds one layer per distinct layer plan of each stack (for sizes by
    arithmetic on the meta device: ``assemble.size``), not a model to run.
    """
    model = spec.model
    if model.kind == "encoder_decoder":
        src_embed = _embedding(model, "encoder")
        tgt_embed = _target_embedding(model, src_embed)
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
    _adapters(net, spec)
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
