"""What the architecture diagram shows, read from an assembled model (meta device is fine):
embeddings, positional encoding, groups of identical layers with their sublayers' registered
types, norms and residual placement, final norm and head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic_core import PydanticUndefined
from torch import nn

from stackform.assemble.models import EncoderDecoderModel, StackformModel
from stackform.blocks import Positional, Stack, TokenEmbedding
from stackform.specs import BlockSpec


@dataclass
class LayerGroupView:
    """``count`` consecutive identical layers."""

    first: int  # index of the first layer of the group
    count: int
    residual: str  # registered residual name: pre | post | sandwich | ...
    norm: str
    sublayers: list[tuple[str, str]]  # (role, label): ("self-attention", "mha"), ("feed-forward", "mlp ...")


@dataclass
class StackView:
    side: str  # "encoder" | "decoder"
    embedding: str
    positional: str
    additive_positional: bool  # added to the embeddings (else used inside attention)
    masks: list[str]
    groups: list[LayerGroupView] = field(default_factory=list)
    final_norm: str | None = None
    head: str | None = None


def block_label(module: nn.Module, spec_block: BlockSpec | None = None) -> str:
    """A registered block's name and all its non-default parameters (from the spec). All of them: layers
    are grouped by their labels, so a hidden parameter would merge layers that differ (a per-layer window)."""
    name = getattr(module, "block_name", type(module).__name__)
    if spec_block is None or spec_block.type != name:
        return name
    params = spec_block.params
    shown = []
    for key, info in type(params).model_fields.items():
        value = getattr(params, key)
        if info.default is PydanticUndefined or value != info.default:
            shown.append(f"{key}={value}")
    return " ".join([name, *shown])


def _ffn_label(module: nn.Module, spec_block: BlockSpec | None) -> str:
    """'mlp gelu, hidden 512': the name, the activation and the hidden width."""
    name = getattr(module, "block_name", type(module).__name__)
    params = spec_block.params if spec_block is not None and spec_block.type == name else None
    activation = getattr(params, "activation", None) or getattr(module, "activation", None)
    linear = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
    width = getattr(module, "hidden", None) or (linear.out_features if linear is not None else None)
    return " ".join(filter(None, [name, activation])) + (f", hidden {width}" if width else "")


def _layer_signature(layer: nn.Module, plan_layer) -> tuple:
    subs = [("self-attention", block_label(layer.self_attn, plan_layer.attention if plan_layer else None))]
    if layer.cross_attn is not None:
        cross = plan_layer.cross_attention if plan_layer else None
        subs.append(("cross-attention", block_label(layer.cross_attn, cross)))
    subs.append(("feed-forward", _ffn_label(layer.ffn, plan_layer.ffn if plan_layer else None)))
    norm = getattr(layer.self_res, "norm", None)
    norm_name = block_label(norm, plan_layer.norm if plan_layer else None) if norm is not None else "-"
    return getattr(layer.self_res, "block_name", type(layer.self_res).__name__), norm_name, tuple(subs)


def _embedding_label(embed: TokenEmbedding, shared: bool) -> str:
    vocab, d = embed.weight.shape
    parts = [f"token embedding {vocab} x {d}"]
    if embed.scale != 1.0:
        parts.append("x sqrt(d_model)")
    if embed.token_types is not None:
        parts.append("+ token types")
    if embed.norm is not None:
        parts.append(f"then {getattr(embed.norm, 'block_name', 'norm')}")
    if shared:
        parts.append("(shared)")
    return " ".join(parts)


def stack_view(model: StackformModel, side: str, stack: Stack, embed: TokenEmbedding, head: nn.Module | None,
               shared: bool = False) -> StackView:
    """The view of one stack (its groups of identical consecutive layers)."""
    spec = model.spec.model
    plan = spec.plan(side)
    positional = stack.positional
    view = StackView(
        side=side, embedding=_embedding_label(embed, shared),
        positional=block_label(positional, plan.positional),
        additive_positional=type(positional).embed is not Positional.embed,
        masks=[getattr(m, "block_name", type(m).__name__) for m in stack.masks],
    )
    for i, layer in enumerate(stack.layers):
        plan_layer = plan.layers[i] if i < len(plan.layers) else None
        residual, norm, subs = _layer_signature(layer, plan_layer)
        last = view.groups[-1] if view.groups else None
        if last and (last.residual, last.norm, tuple(last.sublayers)) == (residual, norm, subs):
            last.count += 1
        else:
            view.groups.append(LayerGroupView(i, 1, residual, norm, list(subs)))
    if stack.final_norm is not None:
        view.final_norm = block_label(stack.final_norm, plan.norm)
    if head is not None:
        view.head = block_label(head, spec.head) + (" (tied to the embedding)" if getattr(head, "tied", False) else "")
    return view


def architecture(model: StackformModel) -> list[StackView]:
    """One view per stack: [encoder, decoder] for an encoder-decoder, else the one stack."""
    if isinstance(model, EncoderDecoderModel):
        shared = model.src_embed.weight is model.tgt_embed.weight  # one table (the norms may be per side)
        return [stack_view(model, "encoder", model.encoder, model.src_embed, None, shared),
                stack_view(model, "decoder", model.decoder, model.tgt_embed, model.head, shared)]
    return [stack_view(model, model.spec.model.kind, model.stack, model.embed, model.head)]
