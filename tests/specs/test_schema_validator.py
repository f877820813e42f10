"""The committed JSON Schema, run through a real validator (jsonschema, as check-jsonschema and editors do):
every valid spec passes, every invalid one fails at its key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from stackform import registry
from stackform.assemble.cli import main
from stackform.specs import load_spec, zoo_dir, zoo_names
from stackform.specs.schema import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "specs" / "schema" / SCHEMA_FILE).read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BASE = {"name": "x", "model": {"kind": "decoder", "vocab_size": 259, "d_model": 8, "n_heads": 2, "n_layers": 1}}


class _Yaml12(yaml.SafeLoader):
    """YAML as editors read it (1.2): ``1e-3`` is a number, not a string."""


_Yaml12.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))


def _load(text: str):
    return yaml.load(text, Loader=_Yaml12)


def _keys(instance) -> list[str]:
    """Where each schema error stands, as stackform's dotted paths: an unexpected key names the key."""
    where = []
    for error in VALIDATOR.iter_errors(instance):
        path = ".".join(map(str, error.absolute_path))
        if error.validator == "additionalProperties":
            extra = re.findall(r"'([^']+)' (?:was|were) unexpected", error.message)
            path = ".".join(p for p in (path, *extra) if p)
        elif error.validator == "required":
            path = ".".join(p for p in (path, re.match(r"'([^']+)'", error.message).group(1)) if p)
        where.append(path)
    return where


def test_the_committed_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_spec_passes(name):
    """The zoo's extends: specs (gpt2-medium, transformer-big, ...) included: their base gives the rest."""
    assert _keys(_load((zoo_dir() / f"{name}.yaml").read_text())) == []


def _doc_specs() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            data = _load(block)
            if isinstance(data, dict) and ("model" in data or "extends" in data) and "sweep" not in data:
                found.append((f"{path.name}#{i}", block))
    return found


@pytest.mark.parametrize("name,text", _doc_specs(), ids=[n for n, _ in _doc_specs()])
def test_every_spec_in_the_docs_passes(name, text):
    data = _load(text)
    if data.get("plugins"):  # its blocks are the plugin's: a schema made with --plugin has them (below)
        return
    assert _keys(data) == []


def test_a_block_registered_later_flows_into_the_schema():
    """What ``stackform schema --plugin MODULE`` writes: the registry as it is, plugin blocks included."""
    from stackform.registry import BlockParams, register
    from stackform.specs import json_schema

    @register("ffn", "test-schema-relu2")
    class ReLU2:
        """A plugin's block."""

        class Params(BlockParams):
            hidden: int | None = None

    try:
        validator = jsonschema.Draft202012Validator(json_schema())
        good = {**BASE, "model": {**BASE["model"], "ffn": {"type": "test-schema-relu2", "hidden": 4}}}
        assert list(validator.iter_errors(good)) == []
        bad = {**BASE, "model": {**BASE["model"], "ffn": {"type": "test-schema-relu2", "hiden": 4}}}
        assert ["'hiden' was unexpected" in e.message for e in validator.iter_errors(bad)] == [True]
    finally:
        registry.unregister("ffn", "test-schema-relu2")


def _model_field(kind: str) -> str | None:
    """The model: key that takes a block of ``kind`` (read from the schema, so new kinds come along)."""
    model = SCHEMA["$defs"]["ModelSpec"]["properties"]
    ref = "#/$defs/" + "".join(p.title() for p in kind.split("_")) + "Block"
    return next((k for k, v in model.items() if f'"{ref}"' in json.dumps(v)), None)


BLOCKS = [(e.kind, e.name) for kind in registry.KINDS for e in registry.list_blocks(kind) if _model_field(kind)]


def _with_block(kind: str, block) -> tuple[dict, str]:
    field = _model_field(kind)
    spec = json.loads(json.dumps(BASE))
    is_list = '"type": "array"' in json.dumps(SCHEMA["$defs"]["ModelSpec"]["properties"][field])
    spec["model"][field] = [block] if is_list else block
    return spec, f"model.{field}.0" if is_list else f"model.{field}"


@pytest.mark.parametrize("kind,name", BLOCKS)
def test_every_block_passes_by_name_and_with_its_example_params(kind, name):
    entry = registry.get(kind, name)
    for block in (name, {"type": name}, {"type": name, **registry.example_params(entry)}):
        if block == name or block == {"type": name}:
            required = entry.params.model_json_schema().get("required", [])
            if required:
                continue
        spec, _ = _with_block(kind, block)
        assert _keys(spec) == [], block


@pytest.mark.parametrize("kind,name", BLOCKS)
def test_a_misspelled_block_parameter_fails_at_its_key(kind, name):
    """``ffn: {type: swiglu, hiden: 3}``: at model.ffn.hiden, not "not one of [geglu, mlp, ...]"."""
    entry = registry.get(kind, name)
    spec, where = _with_block(kind, {"type": name, **registry.example_params(entry), "hiden": 3})
    assert _keys(spec) == [f"{where}.hiden"]


@pytest.mark.parametrize("kind", sorted({k for k, _ in BLOCKS}))
def test_an_unknown_block_name_fails_at_type(kind):
    spec, where = _with_block(kind, {"type": "no_such_block"})
    assert _keys(spec) == [f"{where}.type"]
    spec, where = _with_block(kind, "no_such_block")
    assert _keys(spec) == [where]


CORPUS = sorted((ROOT / "tests" / "specs" / "broken").glob("[0-9][0-9]-*.yaml"))
# what a schema can see: a key, a type, a range, a name; cross-field rules, files and overrides are stackform's
SCHEMA_CAN_SEE = re.compile(r"unknown key|is not one of|unknown [a-z_]+ '|required key|Input should be "
                            r"(a valid|greater|less)|String should match")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_the_broken_corpus_fails_at_the_key_stackform_names(path):
    text = path.read_bytes().decode("utf-8", "replace")
    expect = text.splitlines()[0].removeprefix("# expect: ")
    if "# overrides:" in text or not SCHEMA_CAN_SEE.search(expect):
        return  # an override, or a rule only stackform checks (a schema cannot compare two values)
    try:
        data = _load(text)
    except yaml.YAMLError:
        return
    key = expect.split(":")[0]
    if key.endswith(".type"):  # a block by name: the name is the value when the block is a bare string
        assert any(k in (key, key.removesuffix(".type")) for k in _keys(data)), (key, _keys(data))
    else:
        assert key in _keys(data), (key, _keys(data))


def test_an_extends_spec_needs_no_required_keys_but_still_no_unknown_ones():
    assert _keys({"extends": "gpt2", "model": {"n_layers": 3}}) == []
    assert _keys({"extends": "gpt2", "model": {"n_layer": 3}}) == ["model.n_layer"]
    assert _keys({"extends": "gpt2", "model": {"ffn": {"hidden": 3}}}) == ["model.ffn.type"]  # a block replaces
    assert sorted(_keys({"model": {"n_layers": 3}})) == ["model.d_model", "model.kind", "model.n_heads",
                                                         "model.vocab_size", "name"]


def test_schema_out_beside_a_spec_makes_its_modeline_resolve(tmp_path, capsys, monkeypatch):
    """``stackform schema --out FOLDER`` writes the schema there and prints the first line for a spec beside it."""
    monkeypatch.chdir(tmp_path)
    assert main(["schema", "--out", "."]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    spec = tmp_path / "my-gpt.yaml"
    spec.write_text(line + "\n" + yaml.safe_dump(BASE))
    target = spec.parent / line.split("$schema=")[1]  # yaml-language-server: relative to the spec's folder
    assert json.loads(target.read_text()) == SCHEMA
    assert load_spec(str(spec)).name == "x"


def test_schema_where_prints_a_modeline_that_resolves_from_any_folder(capsys):
    assert main(["schema", "--where"]) == 0
    line = capsys.readouterr().out.strip()
    uri = line.removeprefix("# yaml-language-server: $schema=")
    assert uri.startswith("file:///")
    from urllib.parse import unquote, urlparse

    assert json.loads(Path(unquote(urlparse(uri).path)).read_text()) == SCHEMA
