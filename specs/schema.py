"""JSON Schema of specs, with every registered block's parameters (for editors and check-jsonschema).

Built from the pydantic models and the registry as they are when it is generated, so a new block,
kind or spec key appears without an edit here. Three rules make an editor tell the truth:

- a block is ``NAME`` or ``{type: NAME, ...}``: an ``if``/``then`` per registered name picks that
  block's parameters (``additionalProperties: false``), so a misspelled parameter is reported at
  that key, and an unknown name at ``type``; the same for every pydantic discriminated union
  (``train.data``), never "not valid under any of the given schemas";
- a spec with ``extends:`` is checked against a copy of the models with no required keys (its
  base provides them), a spec without one against the full models.
"""

from __future__ import annotations

import json
from typing import Any

from stackform import registry

from .models import Spec

SCHEMA_ID = "https://stackform.dev/schema/stackform.schema.json"
SCHEMA_FILE = "stackform.schema.json"  # the file name ``stackform schema --out DIR`` writes
PARTIAL = "Partial"  # prefix of the $defs of the extends: variant (no required keys)
_REF = "#/$defs/"


def _block_kind_defs() -> dict[str, str]:
    """{$defs name: kind} of every block kind (``FfnBlock``: ``ffn``)."""
    return {"".join(part.title() for part in kind.split("_")) + "Block": kind for kind in registry.KINDS}


def _dispatch(tag: str, branches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An object whose ``tag`` picks one of ``branches`` (``{value: schema}``): an unknown ``tag`` is
    reported at ``tag``, a wrong key at that key (each branch forbids keys of its own)."""
    return {
        "type": "object",
        "required": [tag],
        "properties": {tag: {"enum": list(branches)}},
        "allOf": [{"if": {"properties": {tag: {"const": value}}, "required": [tag]}, "then": schema}
                  for value, schema in branches.items()],
    }


def _block_schema(kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    names = registry.names(kind)
    branches = {}
    for entry in registry.list_blocks(kind):
        schema = entry.params.model_json_schema(ref_template=_REF + "{model}")
        defs.update(schema.pop("$defs", {}))
        branches[entry.name] = {
            "title": f"{kind} {entry.name}",
            "description": entry.doc,
            "properties": {"type": {"const": entry.name}, **schema.get("properties", {})},
            "required": ["type", *schema.get("required", [])],
            "additionalProperties": False,
        }
    text = {"type": "string", "enum": names, "description": f"a registered {kind} block by name"}
    return {"description": f"a registered {kind} block: NAME or {{type: NAME, ...params}}",
            "if": {"type": "string"}, "then": text, "else": _dispatch("type", branches)}


def _discriminators(node: Any) -> Any:
    """``node`` with each pydantic ``oneOf`` + ``discriminator`` turned into a ``_dispatch``, and each
    optional value (``anyOf: [X, null]``) into ``if null, else X``, so X's own error is the one shown."""
    if isinstance(node, list):
        return [_discriminators(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _discriminators(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        other = next(o for o in options if o != {"type": "null"})
        if not any(key in rest for key in ("if", "then", "else")):
            return {**rest, "if": {"type": "null"}, "else": other}
    found = node.get("discriminator")
    if isinstance(found, dict) and "oneOf" in node and isinstance(found.get("mapping"), dict):
        rest = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf")}
        branches = {value: {"$ref": ref} for value, ref in found["mapping"].items()}
        return {**rest, **_dispatch(found["propertyName"], branches)}
    return node


def _relaxed(node: Any, keep: set[str]) -> Any:
    """A copy of ``node`` with no ``required`` keys and refs to the relaxed copies, but for the defs in
    ``keep`` (blocks: ``type`` stays required, a child block replaces its base's whole)."""
    if isinstance(node, list):
        return [_relaxed(item, keep) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required" and isinstance(value, list):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(_REF) and value[len(_REF):] not in keep:
            value = _REF + PARTIAL + value[len(_REF):]
        out[key] = _relaxed(value, keep)
    return out


def _reachable(schema: dict[str, Any], defs: dict[str, Any], root: str, stop: set[str]) -> set[str]:
    """The defs reachable from ``defs[root]`` without going through ``stop``."""
    seen, todo = {root}, [root]
    while todo:
        text = json.dumps(defs[todo.pop()])
        for name in defs:
            if name not in seen and name not in stop and f'"{_REF}{name}"' in text:
                seen.add(name)
                todo.append(name)
    return seen


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, built from the registry as it is now."""
    spec = Spec.model_json_schema(ref_template=_REF + "{model}")
    defs = spec.pop("$defs", {})
    spec["properties"]["extends"] = {
        "type": "string", "description": "a spec file (relative to this file) or zoo name to start from; "
                                         "its keys are the defaults of this one"}
    kinds = _block_kind_defs()
    for name, kind in kinds.items():
        if name in defs:
            defs[name] = _block_schema(kind, defs)
    defs["Spec"] = spec
    defs = {name: _discriminators(value) for name, value in defs.items()}
    blocks = {name for name in kinds if name in defs}
    kept = set(defs) - _reachable(spec, defs, "Spec", blocks)  # blocks and what only they reach
    for name in sorted(set(defs) - kept):
        defs[PARTIAL + name] = _relaxed(defs[name], kept)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "stackform spec",
        "description": "A stackform spec: name, model, train (docs/specs.md). With extends: only what differs.",
        "if": {"type": "object", "required": ["extends"]},
        "then": {"$ref": _REF + PARTIAL + "Spec"},
        "else": {"$ref": _REF + "Spec"},
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def modeline(schema_path: str) -> str:
    """The first line of a spec that points editors (yaml-language-server) at ``schema_path``."""
    return f"# yaml-language-server: $schema={schema_path}"
