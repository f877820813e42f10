"""The committed JSON Schema is current, and every zoo spec points editors at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackform.specs import json_schema, load_spec, schema_text, zoo_dir, zoo_names

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "specs" / "schema" / "stackform.schema.json"


def test_committed_schema_is_current():
    assert SCHEMA.read_text() == schema_text(), "run: stackform schema --out specs/schema/stackform.schema.json"


def test_schema_lists_every_block_with_its_params():
    schema = json_schema()
    attention = schema["$defs"]["AttentionBlock"]
    names = attention["then"]["enum"]  # a bare name
    assert {"mha", "gqa", "mqa"} <= set(names) and attention["else"]["properties"]["type"]["enum"] == names
    gqa = next(b["then"] for b in attention["else"]["allOf"] if b["if"]["properties"]["type"]["const"] == "gqa")
    assert "n_kv_heads" in gqa["required"] and gqa["additionalProperties"] is False


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_specs_validate_and_point_at_the_schema(name):
    path = zoo_dir() / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/stackform.schema.json"
    assert (path.parent / "../schema/stackform.schema.json").is_file()
    spec = load_spec(name)
    assert spec.name == name
