"""JSON Schema of specs, with every registered block's parameters (for editor autocompletion)."""

from __future__ import annotations

import json
from typing import Any

from stackform import registry

from .models import Spec

SCHEMA_ID = "https://stackform.dev/schema/stackform.schema.json"


def _block_schema(kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    variants: list[dict[str, Any]] = [
        {"type": "string", "enum": registry.names(kind), "description": f"a registered {kind} block by name"}
    ]
    for entry in registry.list_blocks(kind):
        schema = entry.params.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        properties = {"type": {"const": entry.name}, **schema.get("properties", {})}
        variants.append({
            "type": "object",
            "title": f"{kind} {entry.name}",
            "description": entry.doc,
            "properties": properties,
            "required": ["type", *schema.get("required", [])],
            "additionalProperties": False,
        })
    return {"anyOf": variants}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, built from the registry as it is now."""
    schema = Spec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for kind in registry.KINDS:
        name = "".join(part.title() for part in kind.split("_")) + "Block"
        if name in defs:
            defs[name] = _block_schema(kind, defs)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["properties"]["extends"] = {"type": "string", "description": "a spec file or zoo name to start from"}
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
