"""stackform.specs: the YAML spec language (pydantic models, loading, errors, schema)."""

from .blocks import BlockSpec
from .errors import Issue, SpecError
from .load import find_spec_file, iter_blocks, load_spec, read_source, validate_source, zoo_dir, zoo_names
from .models import LayerGroup, LayerPlan, ModelSpec, SideSpec, Spec, StackPlan
from .schema import json_schema, schema_text
from .train import TrainSpec

__all__ = [
    "BlockSpec", "Issue", "LayerGroup", "LayerPlan", "ModelSpec", "SideSpec", "Spec", "SpecError", "StackPlan",
    "TrainSpec", "find_spec_file", "iter_blocks", "json_schema", "load_spec", "read_source", "schema_text",
    "validate_source", "zoo_dir", "zoo_names",
]
