"""The plain-data rules every spec document obeys, wherever it came from.

A YAML file (``source.parse_yaml`` enforces these while reading), the JSON spec stored
in a checkpoint (``parse_json``) or a dict given to ``load_spec``/``assemble``: before
pydantic sees it, a document must be small (MAX_NODES values, MAX_DEPTH levels), hold
integers of at most 64 bits, finite floats only (no ``.inf``, ``.nan``, ``1e999``) and
string keys. Each problem is one located SpecError, found in time linear in the
document's size, so a hostile document cannot make validation slow.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import Issue, SpecError
from .source import MAX_BYTES, MAX_DEPTH, MAX_INT, MAX_NODES, Source

MAX_ISSUES = 20  # non-finite floats reported in one pass


class _Refused(ValueError):
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise _Refused(f"integer {text[:20]}... is too large (limit 2**63 - 1)")
    return int(text)


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a number a spec may hold (floats must be finite)")


def parse_json(text: str, file: str) -> Source:
    """A spec stored as JSON (in a checkpoint's metadata) as a Source; every problem is one SpecError."""
    if len(text) > MAX_BYTES:
        raise SpecError.at(file, f"too large for a spec (over {MAX_BYTES // 1024} KiB of JSON)")
    try:
        data = json.loads(text, parse_int=_int, parse_constant=_constant)
    except _Refused as exc:
        raise SpecError.at(file, f"not a valid spec: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError.at(file, f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise SpecError.at(file, f"not valid JSON (nested too deeply, over {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # anything else the decoder refuses
        raise SpecError.at(file, f"not valid JSON ({str(exc)[:80]})") from None
    src = Source(data, {(): (file, 0, 0)})
    check_document(src)
    return src


def _describe(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def check_document(src: Source) -> None:
    """Raise SpecError when ``src.data`` breaks a plain-data rule (see the module docstring)."""
    issues: list[Issue] = []
    count = 0
    stack: list[tuple[Any, tuple, int]] = [(src.data, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _error(src, path, f"too many values for a spec (over {MAX_NODES})")
        if depth > MAX_DEPTH:
            raise _error(src, path, f"nested too deeply (over {MAX_DEPTH} levels)")
        if isinstance(node, bool) or node is None or isinstance(node, str):
            continue
        if isinstance(node, int):
            if abs(node) > MAX_INT:
                raise _error(src, path, "integer is too large (limit 2**63 - 1)")
        elif isinstance(node, float):
            if not math.isfinite(node) and len(issues) < MAX_ISSUES:
                issues.append(_issue(src, path, f"{_describe(node)} is not allowed: every number in a spec "
                                                "must be finite"))
        elif isinstance(node, dict):
            if len(node) > MAX_NODES:
                raise _error(src, path, f"too many keys for a spec (over {MAX_NODES})")
            for key, value in node.items():
                if not isinstance(key, str):
                    raise _error(src, path, f"keys must be strings, not {type(key).__name__} ({str(key)[:20]!r})")
                stack.append((value, path + (key,), depth + 1))
        elif isinstance(node, (list, tuple)):
            if len(node) > MAX_NODES:
                raise _error(src, path, f"too many items for a spec (over {MAX_NODES})")
            stack.extend((value, path + (i,), depth + 1) for i, value in enumerate(node))
    if issues:
        raise SpecError(sorted(issues, key=lambda i: (i.file, i.line, i.col, i.path)))


def _issue(src: Source, path: tuple, message: str) -> Issue:
    file, line, col = src.where(path) or ("<spec>", 0, 0)
    return Issue(file, line, col, ".".join(map(str, path)), message)


def _error(src: Source, path: tuple, message: str) -> SpecError:
    return SpecError([_issue(src, path, message)])
