"""Reading YAML with positions: every key and value remembers its file, line and column.

Only PyYAML's safe loader is used. Duplicate keys are an error (PyYAML would
silently keep the last one), and so are tabs used for indentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import SpecError

Path = tuple  # a path into the document: ("model", "layers", 1, "repeat")
Pos = tuple[str, int, int]  # (file, line, col), 1-based


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


def _yaml_error(file: str, exc: yaml.YAMLError) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    if "\\t" in problem or "tab" in problem:
        message += "; indent with spaces, not tabs"
    if mark is None:
        return SpecError.at(file, message.replace("\n", " "))
    return SpecError.at(file, message.replace("\n", " "), mark.line + 1, mark.column + 1)


def _walk(node: yaml.Node, path: Path, file: str, src: Source, loader: yaml.SafeLoader) -> Any:
    src.values[path] = (file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolve merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError.at(file, f"mapping keys must be plain scalars, not {type(key).__name__}",
                                   key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                   ".".join(map(str, path)))
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                first = src.keys[path + (key,)]
                raise SpecError.at(file, f"duplicate key '{key}' (first defined at line {first[1]})",
                                   key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                   ".".join(map(str, path + (key,))))
            src.keys[path + (key,)] = (file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _walk(value_node, path + (key,), file, src, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, path + (i,), file, src, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document with positions; syntax errors become SpecError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        src = Source(None)
        src.data = {} if node is None else _walk(node, (), file, src, loader)
        return src
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an impossible timestamp
        raise SpecError.at(file, f"YAML value error: {exc}") from None
    finally:
        loader.dispose()


def read_yaml(path: str, display: str | None = None) -> Source:
    """Read and parse a YAML file; a missing or unreadable file is a SpecError."""
    display = display or str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise SpecError.at(display, "file not found") from None
    except IsADirectoryError:
        raise SpecError.at(display, "is a directory, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise SpecError.at(display, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecError.at(display, f"cannot read: {exc.strerror}") from None
    return parse_yaml(text, display)


def scalar(text: str) -> Any:
    """Parse an override's value as a YAML scalar or flow collection (safe loader)."""
    return yaml.safe_load(text) if text.strip() else ""
