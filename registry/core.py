"""The block registry: kinds, ``register``, lookup with did-you-mean, listing, plugins."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import os
import re
import sys
import types
import typing
import warnings
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ConfigDict

from .dims import Dims
from .errors import RegistryError

T = TypeVar("T")

KINDS: list[str] = ["attention", "positional", "norm", "residual", "ffn", "mask", "head", "token_type", "layer"]
ENTRY_POINT_GROUP = "stackform.blocks"
# Imported (by name, never at import time of this module) before the first lookup.
BUILTIN_MODULES: tuple[str, ...] = ("stackform.blocks",)


class BlockParams(BaseModel):
    """Base class of a block's YAML parameters: unknown keys are an error.

    Override ``check(dims)`` for rules that involve the model's sizes; return a
    message (shown with the values) or None. Floats must be finite (no inf, no nan).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def check(self, dims: "Dims") -> str | None:
        return None


@dataclass(frozen=True)
class Entry:
    """One registered block: its kind, name, class and parameter model."""

    kind: str
    name: str
    cls: type
    params: type[BlockParams]

    @property
    def doc(self) -> str:
        text = (self.cls.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


_entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_state = {"builtins": False, "plugins": False}
plugin_errors: dict[str, str] = {}


def add_kind(kind: str) -> None:
    """Add a new kind of block (for example ``"router"``); adding twice is harmless."""
    if kind not in _entries:
        KINDS.append(kind)
        _entries[kind] = {}


def register(kind: str, name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register ``cls`` as block ``name`` of ``kind``.

    The class may define a nested ``Params(BlockParams)``: the schema of its YAML
    parameters. Registering a name twice raises ``RegistryError``.
    """
    if kind not in _entries:
        raise RegistryError(f"register: unknown kind '{kind}' (kinds: {', '.join(KINDS)}); use add_kind() first")

    def decorate(cls: type[T]) -> type[T]:
        params = getattr(cls, "Params", BlockParams)
        if not (isinstance(params, type) and issubclass(params, BlockParams)):
            raise RegistryError(f"register: {cls.__name__}.Params must subclass stackform.registry.BlockParams")
        if "type" in params.model_fields:
            raise RegistryError(f"register: {cls.__name__}.Params may not define a field named 'type'")
        if name in _entries[kind]:
            other = _entries[kind][name].cls
            raise RegistryError(
                f"register: {kind} '{name}' is already registered by {other.__module__}.{other.__qualname__}"
            )
        _entries[kind][name] = Entry(kind, name, cls, params)
        cls.block_kind = kind  # type: ignore[attr-defined]
        cls.block_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def unregister(kind: str, name: str) -> None:
    """Remove a registration (for tests and interactive work)."""
    _entries.get(kind, {}).pop(name, None)


def _ensure_loaded() -> None:
    if not _state["builtins"]:
        _state["builtins"] = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    if not _state["plugins"]:
        _state["plugins"] = True
        if os.environ.get("STACKFORM_NO_PLUGINS", "") not in ("", "0"):
            return
        load_entry_point_plugins()


def ensure_loaded() -> None:
    """Import the built-in blocks and the installed entry-point plugins (unless STACKFORM_NO_PLUGINS), once."""
    _ensure_loaded()


def load_entry_point_plugins() -> None:
    """Import every module of the ``stackform.blocks`` entry-point group.

    A plugin that fails to import is reported (a warning naming it) and skipped.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in sys.modules:
            continue
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the rest
            plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"stackform plugin '{ep.name}' ({ep.value}) failed to load: {exc}", stacklevel=2)


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def import_plugins(modules: list[str]) -> None:
    """Import modules named on purpose (a spec's ``plugins:``, the CLI's ``--plugin``): dotted
    names only, never paths; any failure is one RegistryError naming the module.

    An installed module wins. Otherwise ``NAME`` may be ``./NAME.py`` or the package
    ``./NAME/`` of the current folder: that file alone is imported, and the folder is never
    put on ``sys.path`` (so nothing else in it can shadow a module torch imports later)."""
    for module in modules:
        if not _MODULE.fullmatch(module):
            raise RegistryError(f"'{module}' is not a module name like my_package.blocks")
        try:
            _import_named(module)
        except ImportError as exc:
            raise RegistryError(f"plugin module '{module}' could not be imported: {exc}") from None
        except Exception as exc:  # the plugin's own code failed while importing
            raise RegistryError(f"plugin module '{module}' failed while importing: "
                                f"{type(exc).__name__}: {exc}") from None


def _import_named(module: str) -> None:
    if module in sys.modules:
        return
    top = module.partition(".")[0]
    if top not in sys.modules and importlib.util.find_spec(top) is None:
        local = _current_folder_module(top)
        if local is not None:
            _import_file(top, *local)
    importlib.import_module(module)


def _current_folder_module(name: str) -> tuple[str, bool] | None:
    """(path, is_package) of ``./name.py`` or ``./name/__init__.py``, or None."""
    folder = os.path.join(os.getcwd(), name)
    if os.path.isfile(os.path.join(folder, "__init__.py")):
        return os.path.join(folder, "__init__.py"), True
    if os.path.isfile(folder + ".py"):
        return folder + ".py", False
    return None


def _import_file(name: str, path: str, package: bool) -> None:
    """Import one file as module ``name`` (a package's submodules come from its own folder)."""
    locations = [os.path.dirname(path)] if package else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def unimported(plugins: object) -> list[str]:
    """The entries of a stored ``plugins:`` list that are not imported yet (an entry that is not a
    string counts as not imported). Viewers refuse those instead of importing them: a file never
    decides what code runs."""
    if not isinstance(plugins, list):
        return []
    _ensure_loaded()  # installed entry-point plugins count as imported (they load on any lookup)
    return [str(p) for p in plugins if not isinstance(p, str) or p not in sys.modules]


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def closest(name: str, options: list[str]) -> str | None:
    """The option closest to ``name`` (edit distance, then similarity), or None when nothing is close."""
    if not options:
        return None
    lowered = name.lower()
    scored = sorted(
        (edit_distance(lowered, o.lower()), -difflib.SequenceMatcher(None, lowered, o.lower()).ratio(), o)
        for o in options
    )
    distance, _, best = scored[0]
    if distance <= max(1, len(name) // 3) or lowered in best.lower() or best.lower() in lowered:
        return best
    return None


def unknown_message(what: str, name: str, options: list[str]) -> str:
    """``unknown attention 'mah'; did you mean 'mha'? (registered: gqa, mha)``."""
    guess = closest(name, options)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return f"unknown {what} '{name}'{hint} (registered: {', '.join(sorted(options))})"


def get(kind: str, name: str) -> Entry:
    """Look up block ``name`` of ``kind``; a miss raises with did-you-mean."""
    _ensure_loaded()
    if kind not in _entries:
        raise RegistryError(unknown_message("kind", kind, KINDS))
    try:
        return _entries[kind][name]
    except KeyError:
        message = unknown_message(kind, str(name), list(_entries[kind]))
        described = None if "did you mean" in message else described_as(kind, str(name))
        if described:
            message = message.replace(" (registered:", f"; did you mean '{described}'? (registered:", 1)
        raise RegistryError(message) from None


def described_as(kind: str, word: str) -> str | None:
    """The one block of ``kind`` whose class name, or a word of its description found in no other
    block's, is ``word``: ``rotary`` is ``rope`` (class Rotary, "Rotary position embedding ...")."""
    word = word.lower()
    if len(word) < 4:
        return None
    words = {e.name: {e.cls.__name__.lower(), *re.findall(r"[a-z0-9_]+", e.doc.lower())}
             for e in _entries.get(kind, {}).values()}
    found = [name for name, seen in words.items() if word in seen]
    return found[0] if len(found) == 1 else None


def names(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    _ensure_loaded()
    return sorted(_entries.get(kind, {}))


def list_blocks(kind: str | None = None, pattern: str = "*") -> list[Entry]:
    """Registered blocks, optionally of one kind and matching a glob ``pattern``."""
    _ensure_loaded()
    if kind is not None and kind not in _entries:
        raise RegistryError(unknown_message("kind", kind, KINDS))
    kinds = [kind] if kind else list(_entries)
    return [
        entry
        for k in kinds
        for name, entry in sorted(_entries[k].items())
        if fnmatch.fnmatchcase(name, pattern)
    ]


def type_name(annotation: typing.Any) -> str:
    """A short readable name of a type annotation, for docs and listings."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        if isinstance(base, type) and base.__name__.endswith("Block"):
            return f"{base.kind} block"
        return type_name(base)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (", optional" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"{origin.__name__} of " + ", ".join(type_name(a) for a in args if a is not Ellipsis)
    if isinstance(annotation, type) and getattr(annotation, "kind", ""):
        return f"{annotation.kind} block"
    return getattr(annotation, "__name__", str(annotation))


def params_of(entry: Entry) -> list[dict[str, Any]]:
    """The parameters of a block as rows: name, type, default, description."""
    rows = []
    for field_name, field in entry.params.model_fields.items():
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append({"name": field_name, "type": type_name(field.annotation), "default": default,
                     "doc": field.description or ""})
    return rows


def example_params(entry: Entry) -> dict[str, Any]:
    """The first example of a block's params (``json_schema_extra={"examples": [...]}``), else {}.

    Blocks with required params must give one: tests and docs build the block from it.
    """
    extra = entry.params.model_config.get("json_schema_extra") or {}
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return dict(examples[0]) if examples else {}
