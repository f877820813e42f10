"""The spec.yaml and checkpoint an import writes: blocks on one line, as the zoo specs read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stackform.specs.schema import SCHEMA_ID

from ..checkpoint import atomic_write, save
from ..models import StackformModel


class _SpecDumper(yaml.SafeDumper):
    """Blocks (``{type: ...}``) and short lists on one line, as the zoo specs are written."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = "type" in data and not any(isinstance(v, dict) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(dict, _represent_dict)
_SpecDumper.add_representer(list, _represent_list)


def write_import(model: StackformModel, data: dict[str, Any], out: Path) -> None:
    """``out/spec.yaml`` (the readable spec) and ``out/model.safetensors`` (the checkpoint)."""
    body = yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False, width=120)
    text = f"# yaml-language-server: $schema={SCHEMA_ID}\n" + body
    atomic_write(out / "spec.yaml", text.encode())
    save(model, out / "model.safetensors")
