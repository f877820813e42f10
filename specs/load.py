"""``load_spec``: a path, zoo name, dict or Spec in; a validated Spec out, or a SpecError."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence

from pydantic import BaseModel, ValidationError

from stackform import registry

from .blocks import BlockSpec
from .errors import Issue, SpecError
from .models import Spec
from .overrides import apply_override, check_overrides
from .paths import resolve_relative_paths
from .plain import check_document
from .pydantic_errors import issue_from_pydantic
from .source import Source, read_yaml

SpecLike = "str | os.PathLike | dict | Spec"


def zoo_dir() -> Path:
    """The folder of shipped specs (``specs/zoo``)."""
    return Path(str(resources.files("stackform.specs") / "zoo"))


def zoo_names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL byte
        return False


def find_spec_file(name: str | os.PathLike, base_dir: Path | None = None) -> Path:
    """A spec path as given, relative to ``base_dir``, or a zoo name; else SpecError."""
    path = Path(name)
    candidates = [path] if path.is_absolute() else ([base_dir / path] if base_dir else []) + [path]
    for candidate in candidates:
        if _is_file(candidate):
            return candidate
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    zoo = zoo_dir() / f"{stem}.yaml"
    if path.parent in (Path("."), Path("")) and _is_file(zoo):
        return zoo
    hint = registry.closest(stem, zoo_names())
    guess = f"; did you mean the zoo spec '{hint}'?" if hint else ""
    raise SpecError.at(str(name), f"no spec file or zoo spec by this name{guess} (zoo: {', '.join(zoo_names())})")


def _merge(base: Source, child: Source) -> Source:
    """Child keys win; mappings merge recursively; lists, scalars and blocks of another type replace."""

    def merge(a: Any, b: Any, path: tuple, values: dict, keys: dict) -> Any:
        if isinstance(a, dict) and isinstance(b, dict) and a.get("type", b.get("type")) == b.get("type"):
            out = dict(a)
            for key, value in b.items():
                out[key] = merge(a.get(key), value, path + (key,), values, keys) if key in a else value
                replaced = not (isinstance(a[key], dict) and isinstance(value, dict)) if key in a else True
                if replaced or a[key].get("type", value.get("type")) != value.get("type"):
                    for p in [p for p in values if p[: len(path) + 1] == path + (key,)]:
                        del values[p]
                    for p in [p for p in keys if p[: len(path) + 1] == path + (key,)]:
                        del keys[p]
            return out
        return b

    values, keys = dict(base.values), dict(base.keys)
    data = merge(base.data, child.data, (), values, keys)
    values.update(child.values)
    keys.update(child.keys)
    return Source(data, values, keys)


def _read_with_extends(path: Path, display: str, stack: tuple[str, ...]) -> Source:
    real = os.path.realpath(path)
    src = read_yaml(str(path), display)
    if src.data is None:
        raise SpecError.at(display, "the file is empty (no YAML content)", 1, 1)
    if not isinstance(src.data, dict):
        raise SpecError.at(display, f"a spec must be a mapping of keys, not {type(src.data).__name__}", 1, 1)
    resolve_relative_paths(src, path.parent)  # a data path is relative to the file that names it
    parent = src.data.pop("extends", None)
    if parent is None:
        return src
    if not isinstance(parent, str):
        file, line, col = src.values[("extends",)]
        raise SpecError.at(file, "must be a file name or zoo name", line, col, "extends")
    try:
        base_path = find_spec_file(parent, path.parent)
    except SpecError as exc:
        file, line, col = src.values[("extends",)]
        raise SpecError.at(file, f"'{parent}': {exc.issues[0].message}", line, col, "extends") from None
    if os.path.realpath(base_path) in stack + (real,):
        chain = " -> ".join(os.path.basename(p) for p in stack + (real, os.path.realpath(base_path)))
        file, line, col = src.values[("extends",)]
        raise SpecError.at(file, f"circular extends: {chain}", line, col, "extends")
    base = _read_with_extends(base_path, _display(base_path), stack + (real,))
    src.values = {p: v for p, v in src.values.items() if p[:1] != ("extends",)}
    src.keys = {p: v for p, v in src.keys.items() if p[:1] != ("extends",)}
    return _merge(base, src)


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def read_source(spec: Any) -> Source:
    """The raw, merged (``extends``) document of a spec path, zoo name or dict."""
    if isinstance(spec, dict):
        return Source(spec, {(): ("<dict>", 0, 0)})
    if not isinstance(spec, (str, os.PathLike)):
        raise SpecError.at("<spec>", f"a spec is a file path, zoo name, dict or Spec, not {type(spec).__name__}")
    path = find_spec_file(spec)
    return _read_with_extends(path, _display(path) if path.parent != zoo_dir() else f"zoo/{path.name}", ())


def iter_blocks(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, BlockSpec]]:
    """Every BlockSpec inside a validated model, with its path."""
    if isinstance(obj, BlockSpec):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from iter_blocks(getattr(obj, name), path + (name,))
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from iter_blocks(item, path + (i,))


def _resolve_blocks(spec: Spec, src: Source) -> list[Issue]:
    issues: list[Issue] = []
    model = spec.model
    for path, block in iter_blocks(spec):
        try:
            entry = registry.get(block.kind, block.type)
        except registry.RegistryError as exc:
            issues.append(_issue(src, path + ("type",), str(exc)))
            continue
        try:
            block._params = entry.params.model_validate(block.raw_params)
        except ValidationError as exc:
            issues.extend(issue_from_pydantic(err, src, path, entry.params) for err in exc.errors())
            continue
        own_side = [s for s in ("encoder", "decoder") if s in path]
        if not own_side and "cross_attention" in path and model.kind == "encoder_decoder":
            own_side = ["decoder"]  # only the decoder has cross-attention
        sides = own_side or model.sides  # a block under model: serves both sides of an encoder-decoder
        for side in sides:
            problem = _check_block(block, model, side, path)
            if problem:
                where = f" (in the {side})" if len(sides) > 1 else ""
                issues.append(_issue(src, path, problem + where))
                break
    return issues


def _decoder_masks(spec: Spec, src: Source) -> list[Issue]:
    """A decoder's explicit mask list must hide later tokens (a mask block with ``hides_future``)."""
    model = spec.model
    if "decoder" not in model.sides:
        return []
    own = model.decoder.mask if model.kind == "encoder_decoder" and model.decoder is not None else None
    masks, path = (own, ("model", "decoder", "mask")) if own is not None else (model.mask, ("model", "mask"))
    if masks is None or any(getattr(m.entry.cls, "hides_future", False) for m in masks):
        return []
    names = [m.type for m in masks]
    problem = (f"a decoder needs causal (or prefix_lm) among its masks: with [{', '.join(names)}] a position sees "
               f"the tokens it predicts and KV-cache generation cannot match; use [{', '.join(['causal', *names])}]")
    if model.kind == "encoder_decoder" and own is None:
        problem += " as model.decoder.mask"
    return [_issue(src, path, problem)]


def _cross_attention_windows(spec: Spec, src: Source) -> list[Issue]:
    """A window compares query and key positions: in cross-attention they index different sequences."""
    issues = []
    for path, block in iter_blocks(spec):
        if path[-1] == "cross_attention" and getattr(block.params, "window", None) is not None:
            problem = ("cross-attention takes no window: target and source positions are not comparable "
                       "(a late target position would see no source token); remove it")
            issues.append(_issue(src, path + ("window",), problem))
    return issues


def _layer_residuals(spec: Spec, src: Source) -> list[Issue]:
    """A layer kind without residual placements (``uses_residual = False``: parallel) refuses a
    ``residual`` written for the same layers: the spec would say two different things."""
    model = spec.model
    issues: list[Issue] = []
    default = type(model).model_fields["residual"].get_default(call_default_factory=True)["type"]
    # the default placement, written out (a stored spec always has it), says nothing a parallel layer contradicts
    explicit = ("model", "residual") if model.residual.type != default else None
    for side in model.sides:
        own = model.side(side) if model.kind == "encoder_decoder" else None
        prefix = ("model", side) if own is not None and getattr(model, side) is not None else None
        side_layer = (prefix + ("layer",), own.layer) if own is not None and own.layer is not None else None
        side_res = prefix + ("residual",) if own is not None and own.residual is not None else None
        groups = own.layers if own is not None and own.layers is not None else model.layers
        gpath = (prefix + ("layers",)) if own is not None and own.layers is not None else ("model", "layers")
        for i, group in enumerate(groups or [None]):
            layer = ((gpath + (i, "layer"), group.layer) if group is not None and group.layer is not None
                     else side_layer or (("model", "layer"), model.layer))
            res = gpath + (i, "residual") if group is not None and group.residual is not None else side_res or explicit
            if layer[1] is None or res is None or getattr(layer[1].entry.cls, "uses_residual", True):
                continue
            where = ".".join(map(str, layer[0]))
            issue = _issue(src, res, f"layer '{layer[1].type}' ({where}) has no residual placement: its norms are "
                                     "its own; remove this residual or use layer: {type: sequential, residual: ...}")
            if issue not in issues:
                issues.append(issue)
    return issues


def _layer_positionals(spec: Spec, src: Source) -> list[Issue]:
    """A layer's own positional replaces the stack's inside attention; only the stack's adds to the
    embeddings, so a per-layer one must rotate q/k or bias scores (its declared ``rotates`` / ``biases``)."""
    issues = []
    for path, block in iter_blocks(spec):
        if path[-1] == "positional" and "layers" in path:
            cls = block.entry.cls
            if not (getattr(cls, "rotates", False) or getattr(cls, "biases", False)):
                problem = (f"'{block.type}' acts on the embeddings, which only the stack's positional does; a layer's "
                           "own positional must rotate queries and keys or bias scores (rope, alibi, relative_bias)")
                issues.append(_issue(src, path + ("type",), problem))
    return issues


def _check_block(block: BlockSpec, model: Any, side: str, path: tuple) -> str | None:
    """The block's own ``check`` with the dims of the stack (side) it is built into."""
    try:
        dims = registry.Dims(
            d_model=model.d_model, n_heads=model.n_heads, head_dim=model.head_dim_value(),
            max_len=model.max_len, n_layers=model.n_layers_of(side), vocab_size=model.vocab_size,
            dropout=model.dropout, causal=(side == "decoder" and "cross_attention" not in path),
        )
        return block.params.check(dims)
    except ValueError as exc:
        return str(exc)


def _issue(src: Source, path: tuple, message: str, key: bool = False) -> Issue:
    file, line, col = src.where(path, key=key) or ("<spec>", 0, 0)
    return Issue(file, line, col, ".".join(map(str, path)), message)


def _import_plugins(plugins: Any, src: Source) -> None:
    """Import the modules a spec names under ``plugins:`` (wrong types are left to validation)."""
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        return
    for i, module in enumerate(plugins):
        try:
            registry.import_plugins([module])
        except registry.RegistryError as exc:
            raise SpecError([_issue(src, ("plugins", i), str(exc))]) from None


def validate_source(src: Source) -> Spec:
    """Validate a raw document (with positions) into a Spec, or raise SpecError."""
    data = src.data
    if not isinstance(data, dict):
        file = next(iter(src.values.values()), ("<spec>",))[0]
        raise SpecError.at(file, f"a spec must be a mapping of keys, not {type(data).__name__}")
    check_document(src)
    _import_plugins(data.get("plugins"), src)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        # dict.fromkeys: a list lacking two items is two pydantic errors but one line
        issues = dict.fromkeys(issue_from_pydantic(err, src, (), Spec) for err in exc.errors())
        raise SpecError(sorted(issues, key=lambda i: (i.file, i.line, i.col))) from None
    issues = _resolve_blocks(spec, src)
    if not issues:
        issues = (_decoder_masks(spec, src) + _cross_attention_windows(spec, src) + _layer_residuals(spec, src)
                  + _layer_positionals(spec, src))
    if issues:
        raise SpecError(issues)
    return spec


def load_spec(spec: Any, overrides: Sequence[str] = ()) -> Spec:
    """Load and validate a spec: a file path, a zoo name, a dict or a Spec.

    ``overrides`` are dotted ``key.path=value`` strings applied to the raw YAML
    before validation. Every problem raises SpecError (``file:line:col: path: message``).
    """
    check_overrides(overrides)
    if isinstance(spec, Spec):
        if not overrides:
            return spec
        spec = spec.model_dump(mode="json")
    src = read_source(spec)
    for text in overrides:
        src = apply_override(src, text)
    return validate_source(src)
