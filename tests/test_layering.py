"""The import arrows of DESIGN.md: registry <- specs, registry <- blocks, both <- assemble.

specs and registry never import torch (validating a spec stays light); blocks never
imports specs or assemble; nothing imports the root folders by their bare names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "registry": set(),
    "specs": {"registry"},
    "blocks": {"registry"},
    "assemble": {"registry", "specs", "blocks"},
}
NO_TORCH = {"registry", "specs"}
HEAVY = {"torch", "einops", "safetensors"}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    depth_of_file = len(path.relative_to(ROOT / package).parts) - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1 - depth_of_file
                if up >= 1:  # climbs out of the package: ..x from the package root
                    target = (node.module or "").split(".")[0]
                    found.append((node.lineno, f"stackform.{target}"))
                continue
            found.append((node.lineno, node.module or ""))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_import_arrows(package):
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path, package):
            top = name.split(".")
            where = f"{path.relative_to(ROOT)}:{line}"
            if top[0] in ALLOWED and top[0] != package:
                problems.append(f"{where}: import {name}: use stackform.{name}")
            if top[0] == "stackform" and len(top) > 1 and top[1] != package and top[1] not in ALLOWED[package]:
                problems.append(f"{where}: {package} may not import {name}")
            if package in NO_TORCH and top[0] in HEAVY:
                problems.append(f"{where}: {package} must stay free of {top[0]}")
    assert not problems, "\n".join(problems)


def test_no_root_init():
    assert not (ROOT / "__init__.py").exists()
