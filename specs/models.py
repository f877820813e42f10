"""Pydantic models of a spec: ``name``, ``model:`` (with ``encoder:``/``decoder:``), ``train:``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .blocks import (
    AttentionBlock, BlockSpec, FfnBlock, HeadBlock, LayerBlock, MaskBlock, NormBlock, PositionalBlock, ResidualBlock,
    TokenTypeBlock,
)
from .layer_rules import expand, is_rule, runs_of
from .train import TASK_FOR_KIND, BuiltinData, TrainSpec

ModelKind = Literal["encoder", "decoder", "encoder_decoder"]

# Upper bounds far above any real model, so a typo or a hostile file is refused at its key
# instead of costing hours (whether a model fits this machine is checked before building).
MAX_WIDTH = 2**20  # d_model, head_dim
MAX_HEADS = 2**16  # n_heads
MAX_LAYERS = 2**20  # layers per stack (n_layers, the sum of repeats)
MAX_TOKENS = 2**31 - 1  # vocab_size, max_len, token ids

Width = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
Heads = Annotated[int, Field(gt=0, le=MAX_HEADS)]
Layers = Annotated[int, Field(gt=0, le=MAX_LAYERS)]
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
TokenId = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True, allow_inf_nan=False)


def rule(path: str, message: str) -> ValueError:
    """A cross-field error that points at ``path`` (relative to the model raising it)."""
    return ValueError(f"@{path}@ {message}")


class LayerGroup(_Strict):
    """``repeat`` consecutive layers, or with ``every`` a rule over the laid-out layers, with blocks that differ
    from the stack's defaults."""

    repeat: Layers = 1
    attention: AttentionBlock | None = None
    cross_attention: AttentionBlock | None = None
    ffn: FfnBlock | None = None
    norm: NormBlock | None = None
    residual: ResidualBlock | None = None
    layer: LayerBlock | None = None
    positional: PositionalBlock | None = Field(None, description="this layer's rotation or score bias in place of "
                                                                "the stack's (a rope base per layer group)")
    every: Layers | None = Field(None, description="a rule, not a run: set these blocks in every layer i with "
                                                   "i % every == offset (after the runs are laid out)")
    offset: int = Field(0, ge=0, le=MAX_LAYERS, description="with every: the first layer the rule sets")

    @model_validator(mode="after")
    def _rule(self) -> "LayerGroup":
        if self.every is None:
            if self.offset:
                raise rule("offset", "offset belongs to a rule: add every (the rule sets layers i with "
                                     "i % every == offset)")
            return self
        if self.repeat != 1:  # (a dumped spec holds repeat: 1 for a rule)
            raise rule("repeat", "a rule (every) lays out no layers, it sets those the runs laid out: drop repeat "
                                 "here (n_layers or the groups with repeat lay them out)")
        if self.offset >= self.every:
            raise rule("offset", f"offset ({self.offset}) must be below every ({self.every})")
        return self


class SideSpec(_Strict):
    """Settings of one side of an encoder-decoder; unset fields come from ``model:``."""

    n_layers: Layers | None = None
    positional: PositionalBlock | None = None
    attention: AttentionBlock | None = None
    cross_attention: AttentionBlock | None = None
    ffn: FfnBlock | None = None
    norm: NormBlock | None = None
    residual: ResidualBlock | None = None
    layer: LayerBlock | None = None
    mask: list[MaskBlock] | None = None
    layers: list[LayerGroup] | None = None
    embedding_norm: NormBlock | None = Field(
        None, description="this side's own norm after its embeddings (BART: also with share_embeddings)")


class ModelSpec(_Strict):
    """The architecture. Blocks are ``{type: NAME, ...params}`` or ``NAME``."""

    kind: ModelKind
    vocab_size: Tokens
    max_len: Tokens = 512
    d_model: Width
    n_heads: Heads
    head_dim: Width | None = Field(None, description="default d_model // n_heads")
    n_layers: Layers | None = Field(None, description="layers per stack (each side of an encoder-decoder)")
    dropout: float = Field(0.0, ge=0, lt=1)
    positional: PositionalBlock = Field(default_factory=lambda: {"type": "learned"})
    residual: ResidualBlock = Field(default_factory=lambda: {"type": "pre"})
    layer: LayerBlock | None = Field(None, description="how a layer combines its sublayers: sequential (default; "
                                                       "each wrapped by the residual) | parallel | ...")
    norm: NormBlock = Field(default_factory=lambda: {"type": "layernorm"})
    attention: AttentionBlock = Field(default_factory=lambda: {"type": "mha"})
    cross_attention: AttentionBlock | None = Field(None, description="default: mha with the attention's bias")
    ffn: FfnBlock = Field(default_factory=lambda: {"type": "mlp"})
    mask: list[MaskBlock] | None = Field(None, description="default: [causal] for decoders, [padding] for encoders")
    tie_embeddings: bool = True
    share_embeddings: bool = Field(False, description="encoder-decoder: one embedding for both sides")
    scale_embeddings: bool = Field(False, description="multiply token embeddings by sqrt(d_model)")
    token_type: TokenTypeBlock | None = Field(None, description="token-type (segment) embeddings (BERT)")
    embedding_norm: NormBlock | None = Field(None, description="a norm after the embeddings, before dropout (BERT)")
    head: HeadBlock = Field(default_factory=lambda: {"type": "linear"}, description="the output head (linear | mlm)")
    final_norm: bool | None = Field(None, description="norm after the stack; default: what the layer asks for (sequential: its residual)")
    init: Literal["normal", "xavier"] = "normal"
    init_std: float = Field(0.02, gt=0)
    pad_id: TokenId | None = None
    bos_id: TokenId | None = None
    eos_id: TokenId | None = None
    mask_id: TokenId | None = Field(None, description="MLM mask token; default pad_id")
    layers: list[LayerGroup] | None = None
    encoder: SideSpec | None = None
    decoder: SideSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.head_dim is None and self.d_model % self.n_heads:
            raise rule("n_heads", f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}), or set head_dim")
        for name in ("pad_id", "bos_id", "eos_id", "mask_id"):
            value = getattr(self, name)
            if value is not None and value >= self.vocab_size:
                raise rule(name, f"{name} ({value}) must be below vocab_size ({self.vocab_size})")
        if self.kind != "encoder_decoder":
            for side in ("encoder", "decoder"):
                if getattr(self, side) is not None:
                    raise rule(side, f"'{side}:' is only for kind encoder_decoder (kind is {self.kind})")
            if self.share_embeddings:
                raise rule("share_embeddings", f"share_embeddings is only for kind encoder_decoder (kind is {self.kind})")
        for side in self.sides:
            self.n_layers_of(side)  # raises when missing or inconsistent
        return self

    @property
    def sides(self) -> list[str]:
        return ["encoder", "decoder"] if self.kind == "encoder_decoder" else [self.kind]

    def side(self, side: str) -> SideSpec:
        return (getattr(self, side, None) if self.kind == "encoder_decoder" else None) or SideSpec()

    def n_layers_of(self, side: str) -> int:
        own = self.side(side)
        groups = own.layers if own.layers is not None else self.layers
        n_layers = own.n_layers or self.n_layers
        where = f"{side}.layers" if own.layers is not None else "layers"
        runs = [group for group in groups or [] if not is_rule(group)]
        if runs:
            total = sum(group.repeat for group in runs)
            if total > MAX_LAYERS:
                raise rule(where, f"repeats add up to {total} layers, above the limit of {MAX_LAYERS} per stack")
            if n_layers is not None and total != n_layers:
                raise rule(where, f"repeats add up to {total} but n_layers is {n_layers}")
            n_layers = total
        if n_layers is None:
            prefix = f"model.{side}.n_layers or " if self.kind == "encoder_decoder" else ""
            at = f"{side}.n_layers" if self.kind == "encoder_decoder" else "n_layers"
            rules = " (rules with every lay out no layers)" if groups else ""
            raise rule(at, f"the {side} has no layers{rules}: set {prefix}model.n_layers")
        for i, group in enumerate(groups or []):
            if is_rule(group) and group.offset >= n_layers:
                raise rule(f"{where}.{i}.offset", f"the rule sets no layer: offset {group.offset} is past the "
                                                  f"{side}'s {n_layers} layers")
        return n_layers

    def head_dim_value(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    def plan(self, side: str) -> "StackPlan":
        """The blocks of every layer of one stack, defaults and overrides resolved."""
        own = self.side(side)
        base = {
            "attention": own.attention or self.attention,
            "cross_attention": own.cross_attention or self.cross_attention,
            "ffn": own.ffn or self.ffn,
            "norm": own.norm or self.norm,
            "residual": own.residual or self.residual,
            "layer": own.layer or self.layer,
            "positional": None,  # the stack's
        }
        groups = (own.layers if own.layers is not None else self.layers) or []
        runs = runs_of([LayerPlan(**blocks) for blocks in expand(base, groups, self.n_layers_of(side))])
        layers = [layer for layer, repeat in runs for _ in range(repeat)]
        masks = own.mask if own.mask is not None else self.mask
        return StackPlan(
            side=side,
            positional=own.positional or self.positional,
            masks=masks,
            layers=layers,
            groups=runs,
            final_norm=self.final_norm,
            norm=base["norm"],
            residual=base["residual"],
            layer=base["layer"],
        )


@dataclass(frozen=True)
class LayerPlan:
    attention: BlockSpec
    cross_attention: BlockSpec | None
    ffn: BlockSpec
    norm: BlockSpec
    residual: BlockSpec
    layer: BlockSpec | None = None  # None: sequential
    positional: BlockSpec | None = None  # None: the stack's


@dataclass(frozen=True)
class StackPlan:
    side: str
    positional: BlockSpec
    masks: list[BlockSpec] | None
    layers: list[LayerPlan]
    final_norm: bool | None
    norm: BlockSpec
    residual: BlockSpec
    layer: BlockSpec | None = None  # None: sequential
    groups: list[tuple[LayerPlan, int]] = ()  # (layer, repeat) runs of consecutive equal layers


class Spec(_Strict):
    """A whole spec file: a name, the model, how to train it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    plugins: list[str] = Field(default_factory=list)
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)

    @model_validator(mode="after")
    def _task_fits(self) -> "Spec":
        expected = TASK_FOR_KIND[self.model.kind]
        if self.train.task is None:
            self.train.task = expected
        elif self.train.task != expected:
            raise rule("train.task", f"task {self.train.task} does not fit model.kind {self.model.kind} (use {expected})")
        if self.train.data is None:
            self.train.data = BuiltinData(name="numbers" if self.train.task == "seq2seq" else "pydoc")
        problem = self.train.problem_with(self.model)
        if problem:
            raise rule(*problem)
        return self
