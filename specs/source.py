"""Reading YAML with positions: every key and value remembers its file, line and column.

Only PyYAML's safe loader is used, and only plain YAML: mappings, lists, strings,
numbers, booleans and null. Duplicate keys are an error (PyYAML would silently
keep the last one), and so are tabs used for indentation, tags (``!!python/...``,
``!!binary``, ``!custom``), recursive aliases, integers beyond 64 bits, and
documents too large or too deep for a spec (alias bombs stop at MAX_NODES values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import SpecError

Path = tuple  # a path into the document: ("model", "layers", 1, "repeat")
Pos = tuple[str, int, int]  # (file, line, col), 1-based

MAX_BYTES = 1 << 20  # a spec file is a few kB; refuse more than 1 MiB
MAX_NODES = 10_000  # values in a document, aliases expanded (a billion-laughs bomb stops here)
MAX_DEPTH = 50  # nesting of mappings and lists
MAX_INT = 2**63 - 1
_YAML = "tag:yaml.org,2002:"
_PLAIN = {_YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")}


@dataclass
class Source:
    """A raw document plus where each part of it came from."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)  # where each value starts
    keys: dict[Path, Pos] = field(default_factory=dict)  # where each mapping key stands

    def where(self, path: Path, key: bool = False) -> Pos | None:
        """The position of ``path``, or of its closest ancestor that has one."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]


def _at(file: str, mark: Any, message: str, path: Path = ()) -> SpecError:
    return SpecError.at(file, message, mark.line + 1, mark.column + 1, ".".join(map(str, path)))


class _Loader(yaml.SafeLoader):
    """The safe loader, with the size of the composed document bounded while it is read."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file, self.depth, self.count = file, 0, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.count += 1
        self.depth += 1
        try:
            if self.count > MAX_NODES:
                raise _at(self.file, self.peek_event().start_mark, f"too many values for a spec (over {MAX_NODES})")
            if self.depth > MAX_DEPTH:
                raise _at(self.file, self.peek_event().start_mark, f"nested too deeply (over {MAX_DEPTH} levels)")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _yaml_error(file: str, exc: yaml.YAMLError, text: str) -> SpecError:
    if isinstance(exc, yaml.reader.ReaderError):  # a control character; it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return SpecError.at(file, f"YAML syntax error: unacceptable character #x{exc.character:04x}", line, col)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    if "\\t" in problem or "tab" in problem:
        message += "; indent with spaces, not tabs"
    if mark is None:
        return SpecError.at(file, message.replace("\n", " "))
    return SpecError.at(file, message.replace("\n", " "), mark.line + 1, mark.column + 1)


class _Walker:
    """Turns composed nodes into plain data, recording positions and enforcing the rules above."""

    def __init__(self, file: str, src: Source, loader: yaml.SafeLoader):
        self.file, self.src, self.loader = file, src, loader
        self.count = 0
        self.open: set[int] = set()  # ids of the nodes being walked (a recursive alias meets itself)

    def walk(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _at(self.file, node.start_mark, f"too many values for a spec (over {MAX_NODES}, aliases expanded)")
        if id(node) in self.open:
            raise _at(self.file, node.start_mark, "recursive alias: a value that contains itself", path)
        if node.tag not in _PLAIN:
            tag = node.tag.replace(_YAML, "!!")
            raise _at(self.file, node.start_mark, f"YAML tag '{tag}' is not allowed: a spec is plain YAML "
                      "(mappings, lists, strings, numbers, booleans, null)", path)
        self.src.values[path] = (self.file, node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.walk(item, path + (i,)) for i, item in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        self.loader.flatten_mapping(node)  # resolve merge keys (<<)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            pos = (self.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                raise _at(self.file, key_node.start_mark, "mapping keys must be plain scalars, not a "
                          f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}", path)
            key = str(key_node.value)  # the key as written: `yes:` stays 'yes', `1.0:` stays '1.0'
            if key in out:
                first = self.src.keys[path + (key,)]
                raise _at(self.file, key_node.start_mark, f"duplicate key '{key}' (first defined at line {first[1]})",
                          path + (key,))
            self.src.keys[path + (key,)] = pos
            out[key] = self.walk(value_node, path + (key,))
        return out

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _YAML + "timestamp":
            return node.value  # a date is just text to a spec (a name like 2024-01-01)
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. an int of more than 4300 digits
            raise _at(self.file, node.start_mark, f"bad value: {exc}", path) from None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise _at(self.file, node.start_mark, f"integer {str(value)[:20]}... is too large (limit 2**63 - 1)", path)
        return value


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document with positions; every problem becomes a SpecError.

    An empty document (nothing but comments) has ``data`` None.
    """
    loader = None
    try:
        loader = _Loader(text, file)
        node = loader.get_single_node()
        src = Source(None, {(): (file, 1, 1)})
        if node is not None:
            src.data = _Walker(file, src, loader).walk(node, ())
        return src
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc, text) from None
    except RecursionError:  # a merge key (<<) that includes itself, or deeper than Python's stack
        raise SpecError.at(file, "nested too deeply, or a merge key (<<) that includes itself") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str, display: str | None = None) -> Source:
    """Read and parse a YAML file; a missing, unreadable or oversized file is a SpecError."""
    display = display or str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError.at(display, "file not found") from None
    except IsADirectoryError:
        raise SpecError.at(display, "is a directory, not a YAML file") from None
    except OSError as exc:
        raise SpecError.at(display, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError.at(display, f"too large for a spec (over {MAX_BYTES // 1024} KiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError.at(display, f"not UTF-8 text ({exc.reason} at byte {exc.start})", line, col) from None
    return parse_yaml(text, display)


_INT = re.compile(r"-?[0-9]+")


def path_part(text: str) -> str | int:
    """One part of a dotted path: an int for a list index (ASCII digits only), else the text."""
    return int(text) if _INT.fullmatch(text) else text


def scalar(text: str, label: str = "<value>") -> Any:
    """Parse an override's value as a YAML scalar or flow collection, by the rules above."""
    return parse_yaml(text, label).data if text.strip() else ""
