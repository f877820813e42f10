"""Sweep files: a base spec, axes of dotted settings (a product, or ``zip:`` for paired lists),
seeds and a budget. Every variant is expanded and validated as a spec here, torch-free; a value
that does not fit the base is reported at its place in the sweep file (file:line:col).

```yaml
base: gpt-tiny                     # a spec path (relative to this file) or a zoo name
overrides: {train.eval_every: 50}  # optional: dotted settings for every variant
axes:                              # the cartesian product, first axis slowest
  model.positional: [learned, rope]
zip: {}                            # optional: lists of equal length, taken together
seeds: 2                           # or a list of seeds
budget: {tokens: 200_000}          # or {minutes: N}, {flops: N}, {steps: N}
match: params                      # optional (the sweep runner, assemble/sweep/, does it)
```
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError
from pydantic import model_validator

from .errors import Issue, SpecError
from .load import _display, find_spec_file, read_source, validate_source, zoo_dir
from .models import Spec
from .overrides import apply_override, apply_value, check_overrides
from .pydantic_errors import issue_from_pydantic
from .source import Pos, Source, path_part, read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    """What every run gets, the same for all: one of tokens, minutes, flops (training) or steps."""

    tokens: PositiveInt | None = None
    minutes: PositiveFloat | None = None
    flops: PositiveFloat | None = None
    steps: PositiveInt | None = None

    @model_validator(mode="after")
    def _one(self) -> "Budget":
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of tokens, minutes, flops, steps (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class SweepSpec(_Strict):
    """A whole sweep file."""

    name: str | None = Field(None, description="default: the file's name without .yaml")
    description: str = ""
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: Any = Field(1, description="a count (seeds 0..N-1) or a list of distinct seeds")
    budget: Budget | None = None
    match: Literal["params"] | None = None
    baseline: dict[str, Any] | None = Field(None, description="the axis values of the variant others are compared to")
    out_dir: str | None = Field(None, description="default: runs/sweeps/<name>")

    @model_validator(mode="after")
    def _shape(self) -> "SweepSpec":
        if not self.axes and not self.zip:
            raise ValueError("@axes@ a sweep needs at least one axis (axes: or zip:) to vary")
        seeds = self.seeds
        count = isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0
        listed = isinstance(seeds, list) and seeds and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) and len(set(seeds)) == len(seeds)
        if not (count or listed):
            raise ValueError(f"@seeds@ a count above 0 or a list of distinct seeds (>= 0), not {seeds!r}")
        return self


@dataclass(frozen=True)
class Setting:
    """One dotted setting of a variant and where it stands in the sweep file (a path into it)."""

    dotted: str
    value: Any
    where: tuple = ()

    def override(self) -> str:
        """``dotted=value`` as a command-line override that parses back to ``value``."""
        return f"{self.dotted}={yaml_text(self.value)}"


@dataclass
class Variant:
    """One point of the sweep: its axis values, the settings that make it, its validated spec."""

    index: int
    axes: dict[str, Any]
    settings: list[Setting]
    label: str
    slug: str
    spec: Spec | None = None


@dataclass
class Sweep:
    """A loaded sweep file: every variant expanded and validated."""

    path: Path
    file: SweepSpec
    src: Source
    base_ref: str  # the base as `stackform train` takes it: a zoo name or a path from the current folder
    base: Spec  # the base with the sweep's overrides
    common: list[Setting]  # the sweep's overrides
    variants: list[Variant]
    seeds: list[int]
    baseline: int  # index of the variant the others are compared to
    name: str = ""
    overrides: list[str] = field(default_factory=list)  # the command line's overrides of the sweep file
    out_dir: Path = field(default_factory=Path)
    given: str = ""  # the file as the command line named it (a path or a shipped name)
    base_src: Source | None = None  # the base spec's raw document, for more settings (matching, budget, seeds)


def yaml_text(value: Any) -> str:
    """A YAML flow text that reads back as ``value`` (JSON, except strings that stay plain)."""
    if isinstance(value, str):
        from .source import scalar

        try:
            if value and scalar(value) == value and "=" not in value and value.strip() == value:
                return value
        except SpecError:
            pass
        return json.dumps(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        text = repr(value)
        return text if "e" not in text or "." in text.split("e")[0] else text.replace("e", ".0e", 1)
    if isinstance(value, (dict, list)):
        return "{" + ", ".join(f"{yaml_key(k)}: {yaml_text(v)}" for k, v in value.items()) + "}" \
            if isinstance(value, dict) else "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return json.dumps(value)


def yaml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else json.dumps(key)


def show(value: Any) -> str:
    """A short label of an axis value: ``rope``, ``mlp(activation=gelu)``, ``256``."""
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        rest = ",".join(f"{k}={show(v)}" for k, v in value.items() if k != "type")
        return f"{value['type']}({rest})" if rest else value["type"]
    if isinstance(value, str):
        return value
    return yaml_text(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its shortest tail that is unique among ``keys``."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if sum(k == tail or k.endswith("." + tail) for k in keys) == 1:
                out[key] = tail
                break
        else:
            out[key] = key
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "variant"


def _where(src: Source, path: tuple) -> Pos:
    return src.where(path) or (str(src.values.get((), ("<sweep>",))[0]), 0, 0)


def _key_pos(src: Source, where: tuple) -> Pos:
    return src.keys.get(where[:2]) or _where(src, where)


def apply_setting(spec_src: Source, setting: Setting, sweep_src: Source) -> Source:
    """``spec_src`` with ``setting`` applied; positions of the new value point into the sweep file."""
    key_pos = _key_pos(sweep_src, setting.where)
    try:
        out = apply_value(spec_src, setting.dotted, setting.value)
    except SpecError as exc:
        issue = exc.issues[0]
        raise SpecError.at(key_pos[0], issue.message, key_pos[1], key_pos[2], issue.path or setting.dotted) from None
    label = f"argument {setting.dotted}={setting.value!r}"
    path = tuple(path_part(p) for p in setting.dotted.split("."))
    values = {p: (key_pos if pos[0] == label else pos) for p, pos in out.values.items()}
    keys = {p: (key_pos if pos[0] == label else pos) for p, pos in out.keys.items()}
    n = len(setting.where)
    values[path] = _where(sweep_src, setting.where)
    for table, source in ((values, sweep_src.values), (keys, sweep_src.keys)):
        for p, pos in source.items():
            if len(p) > n and p[:n] == setting.where:
                table[path + p[n:]] = pos
    return Source(out.data, values, keys)


def settings_spec(base_src: Source, settings: list[Setting], sweep_src: Source) -> Spec:
    """The spec of ``base_src`` with ``settings``, validated; errors point into the sweep file."""
    src = base_src
    for setting in settings:
        src = apply_setting(src, setting, sweep_src)
    return validate_source(src)


def _seeds(file: SweepSpec) -> list[int]:
    return list(range(file.seeds)) if isinstance(file.seeds, int) else list(file.seeds)


def _expand(file: SweepSpec) -> list[dict[str, tuple[Any, tuple]]]:
    """Each variant as {axis: (value, where)}: the product of ``axes`` (first slowest) times the ``zip`` rows."""
    product = [[(key, value, ("axes", key, i)) for i, value in enumerate(values)] for key, values in file.axes.items()]
    n_zip = len(next(iter(file.zip.values()))) if file.zip else 1
    rows = [[(key, values[i], ("zip", key, i)) for key, values in file.zip.items()] for i in range(n_zip)]
    return [{key: (value, where) for key, value, where in (*combo, *row)}
            for combo in itertools.product(*product) for row in rows]


def _check_axes(file: SweepSpec, src: Source) -> None:
    """Axis lists that are empty, zip lists of different lengths, a key both an axis and a zip list
    (here rather than in the model: the keys hold dots, so they are located by tuple paths)."""
    for section in ("axes", "zip"):
        for key, values in getattr(file, section).items():
            if not values:
                raise _error(src, (section, key), "an axis needs at least one value")
    lengths = {key: len(values) for key, values in file.zip.items()}
    first = next(iter(lengths.values()), 0)
    for key, n in lengths.items():
        if n != first:
            each = ", ".join(f"{k}: {m}" for k, m in lengths.items())
            raise _error(src, ("zip", key), f"zip lists must be equally long ({each})", key=True)
    for key in file.zip:
        if key in file.axes:
            raise _error(src, ("zip", key), f"'{key}' is an axis already (under axes:)", key=True)


def _variants(file: SweepSpec, src: Source, base_src: Source, common: list[Setting]) -> list[Variant]:
    keys = [*file.axes, *file.zip]
    short = short_keys(keys)
    variants: list[Variant] = []
    seen: dict[str, tuple] = {}
    for index, point in enumerate(_expand(file)):
        axes = {key: value for key, (value, _) in point.items()}
        settings = [*common, *(Setting(key, value, where) for key, (value, where) in point.items())]
        label = ", ".join(f"{short[k]}={show(v)}" for k, v in axes.items())
        ident = json.dumps(axes, sort_keys=True, default=str)
        if ident in seen:
            where = next(w for k, (v, w) in point.items() if w != seen[ident][k])
            raise _error(src, where, f"variant '{label}' appears twice in the sweep")
        seen[ident] = {k: w for k, (v, w) in point.items()}
        slug = _slug("__".join(f"{short[k]}-{show(v)}" for k, v in axes.items()))
        if any(v.slug == slug for v in variants):
            slug = f"{slug}.{index}"
        variants.append(Variant(index, axes, settings, label, slug))
    for variant in variants:
        variant.spec = _validate_variant(variant, base_src, src, common)
    return variants


def _error(src: Source, where: tuple, message: str, key: bool = False) -> SpecError:
    file, line, col = (src.keys.get(where) if key else None) or _where(src, where)
    return SpecError([Issue(file, line, col, ".".join(map(str, where)), message)])


def _validate_variant(variant: Variant, base_src: Source, src: Source, common: list[Setting]) -> Spec:
    """The variant's spec; an error outside the sweep file is blamed on the axis value that causes it."""
    try:
        return settings_spec(base_src, variant.settings, src)
    except SpecError as exc:
        issue = exc.issues[0]
        if issue.file == _where(src, ())[0]:
            raise SpecError([Issue(issue.file, issue.line, issue.col, issue.path,
                                   f"{issue.message} (variant {variant.label})")]) from None
        axis_settings = variant.settings[len(common):]
        culprit, alone = axis_settings[-1], False
        for setting in axis_settings:
            try:
                settings_spec(base_src, [*common, setting], src)
            except SpecError:
                culprit, alone = setting, True
                break
        others = [s for s in axis_settings if s is not culprit and not alone]  # a combination: name the rest
        with_others = f" with {', '.join(f'{s.dotted}={show(s.value)}' for s in others)}" if others else ""
        raise _error(src, culprit.where, f"{show(culprit.value)}{with_others} does not fit the base: {issue}") from None


def _baseline(file: SweepSpec, src: Source, variants: list[Variant], base: Spec) -> int:
    if file.baseline is not None:
        for key in file.baseline:
            if key not in variants[0].axes:
                raise _error(src, ("baseline", key), f"'{key}' is not an axis of this sweep")
        matches = [v.index for v in variants if all(v.axes[k] == x for k, x in file.baseline.items())]
        if len(matches) != 1:
            problem = "no variant has these values" if not matches else f"{len(matches)} variants have these values"
            raise _error(src, ("baseline",), f"{problem}; name one value of each axis")
        return matches[0]
    own = base.model_dump(mode="json", exclude={"name"})
    same = [v.index for v in variants if v.spec is not None and v.spec.model_dump(mode="json", exclude={"name"}) == own]
    return same[0] if same else 0


def _base_ref(file: SweepSpec, path: Path, src: Source) -> tuple[str, Source]:
    try:
        base_path = find_spec_file(file.base, path.parent)
    except SpecError as exc:
        raise _error(src, ("base",), f"'{file.base}': {exc.issues[0].message}") from None
    if base_path.parent == zoo_dir() and not (path.parent / file.base).is_file() and not Path(file.base).is_file():
        ref = base_path.stem
    else:
        ref = _display(base_path)
    return ref, read_source(base_path)


def sweeps_dir() -> Path:
    """The folder of shipped sweep files (``specs/sweeps``)."""
    return zoo_dir().parent / "sweeps"


def find_sweep_file(name: str | os.PathLike) -> Path:
    """A sweep file path as given, or the name of a shipped one (``positions``)."""
    path = Path(name)
    shipped = sweeps_dir() / f"{path.name.removesuffix('.yaml')}.yaml"
    if not path.exists() and path.parent in (Path("."), Path("")):
        if shipped.is_file():
            return shipped
        names = ", ".join(sorted(p.stem for p in sweeps_dir().glob("*.yaml")))
        raise SpecError.at(str(name), f"no sweep file or shipped sweep by this name (shipped: {names})")
    return path


def load_sweep(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Sweep:
    """Read, expand and validate a sweep file; every problem raises SpecError at its place.
    ``overrides`` (``budget.tokens=100000``, ``seeds=2``) change the sweep file's own keys first."""
    given, path = path, find_sweep_file(path)
    display = _display(path)
    check_overrides(overrides)
    src = read_yaml(str(path), display)
    for text in overrides:
        src = apply_override(src, text)
    if not isinstance(src.data, dict):
        what = "empty" if src.data is None else f"a {type(src.data).__name__}"
        raise SpecError.at(display, f"a sweep file is a mapping (base:, axes:, ...), not {what}", 1, 1)
    try:
        file = SweepSpec.model_validate(src.data)
    except ValidationError as exc:
        issues = dict.fromkeys(issue_from_pydantic(err, src, (), SweepSpec) for err in exc.errors())
        raise SpecError(sorted(issues, key=lambda i: (i.line, i.col))) from None
    _check_axes(file, src)
    base_ref, base_src = _base_ref(file, path, src)
    common = [Setting(key, value, ("overrides", key)) for key, value in file.overrides.items()]
    base = settings_spec(base_src, common, src)
    variants = _variants(file, src, base_src, common)
    name = file.name or path.name.removesuffix(".yaml").removesuffix(".yml")
    out_dir = Path(file.out_dir) if file.out_dir else Path("runs") / "sweeps" / _slug(name)
    sweep = Sweep(path, file, src, base_ref, base, common, variants, _seeds(file), 0, name=name,
                  overrides=list(overrides), out_dir=out_dir, given=str(given), base_src=base_src)
    sweep.baseline = _baseline(file, src, variants, base)
    return sweep
