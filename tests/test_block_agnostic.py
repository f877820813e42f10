"""No code outside ``blocks/`` recognizes a block by its class or its registered name: it reads the
protocol (``blocks/protocol.py``) and declared capabilities instead. Checked on the source (AST):

- ``isinstance`` / ``issubclass`` against a class imported from ``stackform.blocks``, except the
  structural pieces that are not registered blocks (the stack, the KV cache, the attention context);
- a comparison of a ``.type`` / ``.block_name`` (or ``getattr(x, "block_name")``, or a value named
  after a block field: ``masks``, ``residual``, ...) with the name of a registered block.

Exempt: the interop mappings to and from Hugging Face configs (``assemble/interop/``), and the
hand-written reference GPT of the benchmark, which implements exactly one spec shape and says so.
"""

from __future__ import annotations

import ast
from pathlib import Path

from stackform import registry

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("assemble", "specs", "registry")
EXEMPT = ("assemble/interop/", "assemble/bench/reference.py")
STRUCTURAL = {"Stack", "LayerCache", "AttentionContext", "MaskInfo", "LayerParts", "Sublayer"}
NAME_ATTRS = {"type", "block_name"}
# a value named after a block field holds block names: ``'causal' in masks``, ``residual == 'pre'``
FIELD_WORDS = set(registry.KINDS) | {"masks", "cross_attention", "block_kind"}
# spec fields whose ``type`` is not a block's (``train.tokenizer.type == 'none'``, ``train.data.type``)
NOT_BLOCKS = {"tokenizer", "data", "schedule", "optimizer", "device", "lora"}


def _sources() -> list[Path]:
    return [p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))
            if not str(p.relative_to(ROOT)).startswith(EXEMPT)]


def _block_imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stackform.blocks"):
            names.update(alias.asname or alias.name for alias in node.names)
    return names - STRUCTURAL


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def _is_name_read(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in NAME_ATTRS:
        return not (_names_in(node.value) & NOT_BLOCKS)
    if _names_in(node) & FIELD_WORDS:
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "block_name")


def violations(source: str, where: str, block_names: set[str]) -> list[str]:
    tree = ast.parse(source)
    classes = _block_imports(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass"):
            hit = _names_in(node.args[1]) & classes if len(node.args) > 1 else set()
            if hit:
                found.append(f"{where}:{node.lineno}: {node.func.id} against block class {sorted(hit)}")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_name_read(s) for s in sides):
                named = [s for side in sides for s in _strings(side) if s in block_names]
                if named:
                    found.append(f"{where}:{node.lineno}: compares a block's type with registered name(s) {named}")
    return found


def _block_names() -> set[str]:
    return {entry.name for entry in registry.list_blocks()}


def test_no_code_outside_blocks_recognizes_a_block_by_class_or_name():
    names = _block_names()
    found = [v for path in _sources() for v in violations(path.read_text(), str(path.relative_to(ROOT)), names)]
    assert not found, "read declared properties (blocks/protocol.py) instead:\n" + "\n".join(found)


def test_the_check_catches_what_it_forbids():
    names = _block_names()
    bad = ("from stackform.blocks import MultiHeadAttention, Stack\n"
           "def f(m, spec):\n"
           "    if isinstance(m, (MultiHeadAttention, int)):\n"
           "        return 1\n"
           "    if isinstance(m, Stack) and spec.positional.type != 'learned':\n"
           "        return 2\n"
           "    if 'causal' in view.masks:\n"
           "        return 3\n"
           "    return getattr(m, 'block_name', None) in ('pre', 'post')\n")
    found = violations(bad, "x.py", names)
    assert sorted(int(v.split(":")[1]) for v in found) == [3, 5, 7, 9], found
    fine = "def f(device, data):\n    return device.type == 'cuda' or data.type == 'builtin'\n"
    assert violations(fine, "y.py", names) == []
