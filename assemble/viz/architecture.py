"""What the architecture diagram shows, read from an assembled model (meta device is fine):
embeddings, positional encoding, groups of identical layers with their sublayers' registered
types, norms and residual placement, final norm and head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from stackform.assemble.models import EncoderDecoderModel, StackformModel
from stackform.blocks import Stack, protocol


@dataclass
class LayerGroupView:
    """``count`` consecutive identical layers."""

    first: int  # index of the first layer of the group
    count: int
    layer: str  # the layer's describe(): "sequential", "parallel shared_norm=False", ...
    parallel: bool  # the sublayers read the same input and their outputs add (else one after another)
    sublayers: list[tuple[str, str]]  # (role, label): ("self-attention", "mha"), ("feed-forward", "mlp ...")
    norms: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # per sublayer: (norms_at, norm label)
    shared_norm: bool = False  # a parallel layer whose branches share one norm (drawn once)


@dataclass
class StackView:
    side: str  # "encoder" | "decoder"
    embedding: str
    positional: str
    additive_positional: bool  # added to the embeddings (else used inside attention)
    masks: list[str]
    hides_future: bool = False  # a mask declares it hides later tokens (drawn as masked self-attention)
    groups: list[LayerGroupView] = field(default_factory=list)
    final_norm: str | None = None
    head: str | None = None


ROLE_TITLES = {"self_attention": "self-attention", "cross_attention": "cross-attention", "ffn": "feed-forward"}


def block_label(module: nn.Module) -> str:
    """A block's ``describe()``: its registered name and all its non-default parameters (by default). All
    of them: layers are grouped by their labels, so a hidden parameter would merge layers that differ."""
    return protocol.describe(module)


def _layer_signature(layer: nn.Module) -> tuple:
    subs, norms = [], []
    own = getattr(layer, "sublayers", None)
    for sub in (own() if callable(own) else []):
        subs.append((ROLE_TITLES.get(sub.role, sub.role.replace("_", " ")), block_label(sub.block)))
        norms.append((tuple(sub.norms_at), block_label(sub.norm) if sub.norm is not None else "-"))
    return block_label(layer), bool(getattr(layer, "parallel", False)), tuple(subs), tuple(norms)


def _embedding_label(embed: nn.Module, shared: bool) -> str:
    return block_label(embed) + (" (shared)" if shared else "")


def stack_view(model: StackformModel, side: str, stack: Stack, embed: nn.Module, head: nn.Module | None,
               shared: bool = False) -> StackView:
    """The view of one stack (its groups of identical consecutive layers)."""
    positional = stack.positional
    view = StackView(
        side=side, embedding=_embedding_label(embed, shared),
        positional=block_label(positional),
        additive_positional=bool(getattr(positional, "adds_to_embeddings", False)),
        masks=[block_label(m) for m in stack.masks],
        hides_future=any(getattr(m, "hides_future", False) for m in stack.masks),
    )
    for i, layer in enumerate(stack.layers):
        label, parallel, subs, norms = _layer_signature(layer)
        last = view.groups[-1] if view.groups else None
        if last and (last.layer, last.parallel, tuple(last.sublayers), tuple(last.norms)) == (label, parallel, subs, norms):
            last.count += 1
        else:
            shared = parallel and bool(getattr(layer, "shared_norm", False))
            view.groups.append(LayerGroupView(i, 1, label, parallel, list(subs), list(norms), shared))
    if stack.final_norm is not None:
        view.final_norm = block_label(stack.final_norm)
    if head is not None:
        view.head = block_label(head).removesuffix(" (tied)") + (" (tied to the embedding)" if getattr(head, "tied", False) else "")
    return view


def architecture(model: StackformModel) -> list[StackView]:
    """One view per stack: [encoder, decoder] for an encoder-decoder, else the one stack."""
    if isinstance(model, EncoderDecoderModel):
        shared = model.src_embed.weight is model.tgt_embed.weight  # one table (the norms may be per side)
        return [stack_view(model, "encoder", model.encoder, model.src_embed, None, shared),
                stack_view(model, "decoder", model.decoder, model.tgt_embed, model.head, shared)]
    return [stack_view(model, model.spec.model.kind, model.stack, model.embed, model.head)]
