"""Fuzzing the spec loader and the override parser: nothing escapes but a SpecError.

Random YAML-ish texts, random bytes, random JSON-like documents, random mutations of
every zoo spec (as dicts and as YAML files) and random override strings. Deterministic
(``derandomize``) and a few seconds each; ``STACKFORM_FUZZ_EXAMPLES=5000`` runs a long,
random campaign instead.
"""

from __future__ import annotations

import copy
import os
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackform.specs import SpecError, load_spec, zoo_names
from stackform.specs.load import read_source, validate_source
from stackform.specs.overrides import apply_override
from stackform.specs.source import parse_yaml

DEEP = int(os.environ.get("STACKFORM_FUZZ_EXAMPLES", "0"))  # e.g. 5000: a long random campaign, not derandomized
FUZZ = settings(max_examples=DEEP or 150, deadline=None, derandomize=not DEEP, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
_DIR = tempfile.TemporaryDirectory(prefix="stackform-fuzz-")
SPEC_KEYS = ["name", "model", "train", "plugins", "extends", "kind", "vocab_size", "d_model", "n_heads", "n_layers",
             "max_len", "attention", "ffn", "norm", "positional", "layers", "repeat", "type", "window", "encoder",
             "decoder", "task", "data", "steps", "mask", "head_dim", "n_kv_heads", "hidden", "pad_id", "optimizer"]


def _only_spec_errors(load, *args) -> None:
    try:
        load(*args)
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message and message.isprintable(), repr(message)


def _load_file(data: bytes) -> None:
    path = os.path.join(_DIR.name, "fuzz.yaml")
    with open(path, "wb") as handle:
        handle.write(data)
    _only_spec_errors(load_spec, path)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(
    ["decoder", "encoder", "encoder_decoder", "mha", "gqa", "rope", "mlp", "swiglu", "causal_lm", "builtin", "pydoc",
     "gpt-tiny", "extends", ".nan", "-.inf", "0x1F", "~", "yes", "1e400", "", " "])
keys = st.sampled_from(SPEC_KEYS) | st.text(max_size=8)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                         max_leaves=25)

yaml_alphabet = st.sampled_from(list("abcdmnx019 :-[]{},&*!|>'\"#%@?~.\n\t\\") + ["<<", "!!", "---", "\n  ", "name",
                                "model", "kind", "decoder", "type", "!!python/object:os.system", "&a", "*a"])
yaml_ish = st.lists(yaml_alphabet, max_size=60).map("".join)


@FUZZ
@given(yaml_ish)
def test_random_yaml_texts(text):
    _only_spec_errors(lambda: validate_source(parse_yaml(text, "fuzz.yaml")))


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_as_a_file(data):
    _load_file(data)


@FUZZ
@given(json_like)
def test_random_documents(doc):
    _only_spec_errors(load_spec, doc)
    _load_file(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))


def _paths(node, prefix=()):
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _mutate(doc, draw):
    """One random edit: delete a key, change a value's type, rename a key, insert junk."""
    paths = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    op = draw(st.sampled_from(["delete", "retype", "rename", "junk"]))
    if op == "delete":
        parent.pop(key) if isinstance(parent, dict) else parent.pop(key)
    elif op == "retype":
        parent[key] = draw(json_like)
    elif op == "rename" and isinstance(parent, dict):
        parent[draw(keys)] = parent.pop(key)
    else:
        target = parent[key] if isinstance(parent[key], (dict, list)) else parent
        if isinstance(target, dict):
            target[draw(keys)] = draw(json_like)
        else:
            target.insert(draw(st.integers(0, len(target))), draw(json_like))


@pytest.mark.parametrize("zoo", zoo_names())
@settings(FUZZ, max_examples=DEEP // 4 or 40)
@given(data=st.data())
def test_mutated_zoo_specs(zoo, data):
    doc = copy.deepcopy(read_source(zoo).data)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(doc, data.draw)
    _only_spec_errors(load_spec, doc)
    _load_file(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))


GPT = read_source("gpt-tiny")
DOTTED = ["model.d_model", "model.attention", "model.attention.window", "model.layers", "model.layers.0.repeat",
          "model.ffn.hidden", "train.steps", "train.optimizer.lr", "name", "plugins", "model", "train.data.type",
          "model.layers.-1", "model.mask.0"]
values = st.sampled_from(["1", "-1", "0", "abc", "[1", "{type: mha}", "null", "!!python/name:os.system", "&a [*a]",
                          ".nan", "1e999", "9" * 30, "[]", "{}", "'", "mha", "swiglu", "- a\n- b", "", "\t"])


def _override(text):
    validate_source(apply_override(GPT, text))


@FUZZ
@given(st.sampled_from(DOTTED) | st.text(max_size=15), st.sampled_from(["=", "", "=="]), values | st.text(max_size=15))
def test_random_overrides(key, sep, value):
    _only_spec_errors(_override, key + sep + value)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("ab01.=-_ []{}:!&*'\"\n")), max_size=30))
def test_random_override_strings(text):
    _only_spec_errors(_override, text)


def test_hostile_yaml_is_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    cases = {
        bomb: "too many values for a spec",
        "a: " + "[" * 2000 + "]" * 2000: "nested too deeply",
        "a: &a {<<: *a}\n": "SpecError",
        "name: " + "9" * 5000 + "\n": "bad value",
    }
    for text, expected in cases.items():
        with pytest.raises(SpecError) as info:
            validate_source(parse_yaml(text, "hostile.yaml"))
        assert expected in str(info.value) or expected == "SpecError"


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\ndescription: '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(SpecError, match=r"big.yaml: too large for a spec \(over 1024 KiB\)"):
        load_spec(str(path))
