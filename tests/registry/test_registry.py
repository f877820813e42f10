"""The registry contract: register, duplicates, lookups with did-you-mean, listing, plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from torch import nn

from stackform import registry
from stackform.registry import BlockParams, RegistryError, register


@pytest.fixture
def scratch():
    added = []
    yield added
    for kind, name in added:
        registry.unregister(kind, name)


def test_register_and_lookup(scratch):
    @register("ffn", "test-identity")
    class Identity(nn.Module):
        """Returns its input."""

        class Params(BlockParams):
            width: int = 3

    scratch.append(("ffn", "test-identity"))
    entry = registry.get("ffn", "test-identity")
    assert entry.cls is Identity and entry.params is Identity.Params and entry.doc == "Returns its input."
    assert "test-identity" in registry.names("ffn")
    assert [e.name for e in registry.list_blocks("ffn", "test-*")] == ["test-identity"]


def test_duplicate_names_raise(scratch):
    with pytest.raises(RegistryError, match="already registered"):
        register("attention", "mha")(type("Other", (nn.Module,), {}))


@pytest.mark.parametrize("kind,typo,expected", [("attention", "mah", "mha"), ("ffn", "swiglu2", "swiglu"),
                                                 ("norm", "layer_norm", "layernorm"), ("positional", "rop", "rope")])
def test_unknown_names_suggest_the_closest(kind, typo, expected):
    with pytest.raises(RegistryError) as info:
        registry.get(kind, typo)
    message = str(info.value)
    assert f"did you mean '{expected}'?" in message
    assert "registered:" in message and expected in message


def test_unknown_kind():
    with pytest.raises(RegistryError, match="unknown kind 'atention'; did you mean 'attention'"):
        registry.get("atention", "mha")


def test_params_must_be_block_params():
    with pytest.raises(RegistryError, match="BlockParams"):
        register("ffn", "bad-params")(type("Bad", (nn.Module,), {"Params": dict}))


def test_add_kind(scratch):
    registry.add_kind("router")

    @register("router", "top1")
    class Top1(nn.Module):
        pass

    scratch.append(("router", "top1"))
    assert registry.get("router", "top1").cls is Top1


def test_every_block_with_required_params_has_an_example():
    for entry in registry.list_blocks():
        required = [n for n, f in entry.params.model_fields.items() if f.is_required()]
        if required:
            example = registry.example_params(entry)
            assert set(required) <= set(example), f"{entry.kind} {entry.name} needs an example for {required}"
            entry.params.model_validate(example)


PLUGIN = textwrap.dedent('''
    from torch import nn
    from stackform.registry import register

    @register("ffn", "from-plugin")
    class FromPlugin(nn.Module):
        """Registered through an entry point."""
''')


def _plugin_env(tmp_path, broken: bool):
    """A fake installed distribution with stackform.blocks entry points (one broken)."""
    (tmp_path / "good_plugin.py").write_text(PLUGIN)
    (tmp_path / "bad_plugin.py").write_text("raise RuntimeError('boom')\n")
    dist = tmp_path / "fakeplugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugins\nVersion: 1.0\n")
    lines = ["[stackform.blocks]", "good = good_plugin"] + (["bad = bad_plugin"] if broken else [])
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _run(tmp_path, code: str, **env):
    import os

    full = {**os.environ, "PYTHONPATH": str(tmp_path), **env}
    full.pop("STACKFORM_NO_PLUGINS", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_entry_point_plugins_load_lazily_and_broken_ones_are_reported(tmp_path):
    _plugin_env(tmp_path, broken=True)
    code = ("import sys; from stackform import registry; assert 'good_plugin' not in sys.modules; "
            "print(registry.get('ffn', 'from-plugin').doc); print(registry.get('ffn', 'mlp').name); "
            "print(sorted(registry.core.plugin_errors))")
    result = _run(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["Registered through an entry point.", "mlp", "['bad']"]
    assert "stackform plugin 'bad' (bad_plugin) failed to load: boom" in result.stderr


def test_no_plugins_switch(tmp_path):
    _plugin_env(tmp_path, broken=False)
    code = "from stackform import registry; print('from-plugin' in registry.names('ffn'))"
    assert _run(tmp_path, code, STACKFORM_NO_PLUGINS="1").stdout.strip() == "False"
    assert _run(tmp_path, code).stdout.strip() == "True"


def test_spec_plugins_import_modules_on_purpose(tmp_path, monkeypatch):
    (tmp_path / "my_blocks.py").write_text(PLUGIN.replace("from-plugin", "from-spec"))
    monkeypatch.syspath_prepend(str(tmp_path))
    from stackform.specs import load_spec

    spec = load_spec({"name": "p", "plugins": ["my_blocks"],
                      "model": {"kind": "decoder", "vocab_size": 10, "d_model": 8, "n_heads": 2, "n_layers": 1,
                                "ffn": "from-spec"}})
    assert spec.model.ffn.type == "from-spec"
    registry.unregister("ffn", "from-spec")
