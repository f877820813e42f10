"""Sweep files: located errors (file:line:col), the product and zip expansion, the settings of each
variant reproduced by its command-line overrides."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from stackform.specs import SpecError, load_spec
from stackform.specs.sweep import load_sweep, sweeps_dir

BASE = {"name": "base", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 32, "d_model": 32, "n_heads": 2,
                                  "n_layers": 1, "positional": "rope", "ffn": {"type": "swiglu", "hidden": 64}},
        "train": {"steps": 6, "batch_size": 2, "schedule": {"warmup": 1}}}


@pytest.fixture
def write(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))

    def write(text: str):
        path = tmp_path / "sweep.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def _error(path, *overrides) -> str:
    with pytest.raises(SpecError) as info:
        load_sweep(path, overrides)
    return str(info.value)


BROKEN = [  # (sweep text, the located error it must give: file:line:col: path: message part)
    ("base: base.yaml\naxes:\n  model.positional: [learned, rop]\n",
     ":3:31: model.positional.type: unknown positional 'rop'; did you mean 'rope'?"),
    ("base: base.yaml\naxes:\n  model.d_model: [32, 33]\n",
     ":3:23: axes.model.d_model.1: 33 does not fit the base: "),
    ("base: base.yaml\naxes:\n  model.positonal: [learned]\n",
     ":3:3: model.positonal: unknown key 'positonal'; did you mean 'positional'?"),
    ("base: base.yaml\naxes:\n  model.ffn: [{type: mlp, hiden: 3}]\n",
     ":3:27: model.ffn.hiden: unknown key 'hiden'; did you mean 'hidden'?"),
    ("base: base.yaml\nzip:\n  model.positional: [learned, rope]\n  model.n_layers: [1]\n",
     ":4:3: zip.model.n_layers: zip lists must be equally long"),
    ("base: base.yaml\naxes: {model.n_layers: [1]}\nbudget: {tokens: 5, minutes: 1}\n",
     ":3:9: budget: give exactly one of tokens, minutes, flops, steps"),
    ("base: base.yaml\naxes: {model.n_layers: [1]}\nseeds: [1, 1]\n", ":3:8: seeds: a count above 0"),
    ("base: base.yaml\naxes: {model.n_layers: []}\n", ":2:24: axes.model.n_layers: an axis needs at least one value"),
    ("base: base.yaml\naxes: {model.n_layers: [1]}\nzip: {model.n_layers: [2]}\n", ":3:7: zip.model.n_layers: 'model"),
    ("base: base.yaml\naxes: {model.n_layers: [1, 2]}\nbaseline: {model.n_layers: 3}\n",
     ":3:11: baseline: no variant has these values"),
    ("base: nothere.yaml\naxes: {model.n_layers: [1]}\n", ":1:7: base: 'nothere.yaml': no spec file"),
    ("base: base.yaml\naxes: {model.n_layers: [1, 1]}\n", ":2:28: axes.model.n_layers.1: variant 'n_layers=1' appears twice"),
    ("base: base.yaml\naxes: {model.n_layers: [1]}\nseed: 3\n", ":3:1: seed: unknown key 'seed'; did you mean 'seeds'?"),
    ("base: base.yaml\n", ":1:1: axes: a sweep needs at least one axis"),
    ("base: base.yaml\noverrides: {model.d_model: 30}\naxes: {model.n_layers: [1]}\n",
     "base.yaml:"),  # the base does not take the common override: its own error, at its own place
    ("base: base.yaml\naxes:\n  model.layers.3.ffn: [mlp]\n", ":3:3: model.layers.3: no item 3 in a list of 0"),
]


@pytest.mark.parametrize("text, expected", BROKEN)
def test_errors_point_at_their_place(write, text, expected):
    path = write(text)
    message = _error(path)
    assert expected in message, message
    assert "\n" not in message
    where = "base.yaml" if expected == "base.yaml:" else "sweep.yaml"
    assert message.split(":")[0].endswith(where), message


def test_command_line_overrides_of_the_sweep_file_are_located(write):
    path = write("base: base.yaml\naxes: {model.n_layers: [1]}\n")
    assert "override 'budget.tokns=5':1:1: budget.tokns: unknown key 'tokns'" in _error(path, "budget.tokns=5")
    assert load_sweep(path, ["seeds=3"]).seeds == [0, 1, 2]


def test_product_is_every_combination_first_axis_slowest(write):
    path = write("""
        base: base.yaml
        axes:
          model.positional: [learned, sinusoidal, alibi]
          model.ffn: [{type: mlp, activation: gelu}, swiglu]
        seeds: [3, 7]
        """)
    sweep = load_sweep(path)
    assert [(v.axes["model.positional"], v.axes["model.ffn"]) for v in sweep.variants] == [
        (p, f) for p in ("learned", "sinusoidal", "alibi") for f in ({"type": "mlp", "activation": "gelu"}, "swiglu")]
    assert sweep.seeds == [3, 7]
    assert len({v.slug for v in sweep.variants}) == 6
    for variant in sweep.variants:
        assert variant.spec.model.positional.type == variant.axes["model.positional"]
        ffn = variant.axes["model.ffn"]
        assert variant.spec.model.ffn.type == (ffn if isinstance(ffn, str) else ffn["type"])
        assert variant.spec.model.ffn.params.hidden is None  # the axis value replaces the base's block
        # the command line reproduces the variant: what --plan prints is what `stackform sweep` trains
        assert load_spec(sweep.base_ref, [s.override() for s in variant.settings]) == variant.spec


def test_zip_pairs_values_and_multiplies_with_axes(write):
    path = write("""
        base: base.yaml
        overrides: {train.batch_size: 3}
        axes:
          model.positional: [learned, rope]
        zip:
          model.d_model: [32, 64, 96]
          model.n_heads: [2, 4, 6]
        """)
    sweep = load_sweep(path)
    got = [(v.spec.model.positional.type, v.spec.model.d_model, v.spec.model.n_heads) for v in sweep.variants]
    assert got == [(p, d, h) for p in ("learned", "rope") for d, h in ((32, 2), (64, 4), (96, 6))]
    assert all(v.spec.train.batch_size == 3 for v in sweep.variants)
    assert sweep.base.train.batch_size == 3


def test_baseline_is_the_variant_equal_to_the_base_or_the_named_one(write):
    axes = "base: base.yaml\naxes:\n  model.positional: [learned, rope, alibi]\n"
    assert load_sweep(write(axes)).baseline == 1  # rope: the base's own value
    assert load_sweep(write(axes + "baseline: {model.positional: alibi}\n")).baseline == 2
    assert load_sweep(write("base: base.yaml\naxes: {model.n_layers: [2, 3]}\n")).baseline == 0  # none equal: the first


@pytest.mark.parametrize("name", sorted(p.stem for p in sweeps_dir().glob("*.yaml")))
def test_shipped_sweeps_load_by_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found by name from anywhere, with their zoo base
    sweep = load_sweep(name)
    assert sweep.path == sweeps_dir() / f"{name}.yaml" and sweep.variants and sweep.file.budget is not None
    assert all(v.spec is not None for v in sweep.variants)
    with pytest.raises(SpecError, match="no sweep file or shipped sweep by this name"):
        load_sweep(name + "-nope")
