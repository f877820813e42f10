"""Block references in a spec: ``{type: NAME, ...params}`` or the bare string ``NAME``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr, model_serializer

from stackform import registry


def _as_block(value: Any) -> Any:
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, dict) and "type" not in value:
        raise ValueError(f"a block needs a 'type' (a block name), got keys {sorted(map(str, value))}")
    return value


class BlockSpec(BaseModel):
    """A block named in a spec. After validation ``params`` holds its typed parameters."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = ""
    type: str
    _params: Any = PrivateAttr(default=None)

    @property
    def params(self) -> registry.BlockParams:
        if self._params is None:
            raise RuntimeError(f"block {self.kind} '{self.type}' was not resolved (use stackform.specs.load_spec)")
        return self._params

    @property
    def raw_params(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    @property
    def entry(self) -> registry.Entry:
        return registry.get(self.kind, self.type)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockSpec):
            return NotImplemented
        return self.kind == other.kind and self.model_dump() == other.model_dump()

    __hash__ = None  # mutable, like other pydantic models

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        params = self._params.model_dump(mode="json") if self._params is not None else self.raw_params
        return {"type": self.type, **params}


def _kind_class(kind: str) -> type[BlockSpec]:
    name = "".join(part.title() for part in kind.split("_")) + "Block"
    return type(name, (BlockSpec,), {"kind": kind, "__doc__": f"A registered {kind} block."})


def block_class(kind: str) -> Any:
    """The annotated BlockSpec type of a kind (``{type: NAME, ...}`` or ``NAME``), also for one added
    later (``add_kind``)."""
    return Annotated[_kind_class(kind), BeforeValidator(_as_block)]


# One type per kind of the registry's one list (registry.KINDS); the names below are conveniences.
BLOCK_TYPES: dict[str, Any] = {kind: block_class(kind) for kind in registry.KINDS}
AttentionBlock, PositionalBlock, NormBlock, ResidualBlock, FfnBlock, MaskBlock, HeadBlock, TokenTypeBlock, LayerBlock = (
    BLOCK_TYPES[kind] for kind in ("attention", "positional", "norm", "residual", "ffn", "mask", "head", "token_type",
                                   "layer"))
