"""The field reference of specs as Markdown (docs/specs.md is built from it)."""

from __future__ import annotations


from pydantic import BaseModel

from stackform.registry.core import type_name

from .data_formats import HFDatasetData, JsonlData, ParquetData
from .models import LayerGroup, ModelSpec, SideSpec, Spec
from .train import BuiltinData, FsdpSpec, OptimizerSpec, PairsData, ScheduleSpec, TextData, TrainSpec

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("top level", Spec),
    ("model", ModelSpec),
    ("model.encoder / model.decoder", SideSpec),
    ("model.layers[] (and side layers)", LayerGroup),
    ("train", TrainSpec),
    ("train.data: builtin", BuiltinData),
    ("train.data: text", TextData),
    ("train.data: pairs", PairsData),
    ("train.data: jsonl", JsonlData),
    ("train.data: parquet", ParquetData),
    ("train.data: hf_dataset", HFDatasetData),
    ("train.optimizer", OptimizerSpec),
    ("train.schedule", ScheduleSpec),
    ("train.fsdp", FsdpSpec),
]


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, dict) and "type" in value:
        return f"`{value['type']}`"
    return f"`{value!r}`"


def markdown() -> str:
    lines = []
    for title, model in SECTIONS:
        lines += [f"### `{title}`", "", (model.__doc__ or "").strip().splitlines()[0], "",
                  "| field | type | default | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            row = [f"`{name}`", type_name(field.annotation), _default(field), field.description or ""]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)
