"""``stackform validate``: every check train runs, every problem in one pass, did-you-mean across levels,
``--print``; ``stackform list zoo``."""

from __future__ import annotations

import re

import pytest
import yaml

from stackform import registry
from stackform.assemble.cli import main
from stackform.specs import load_spec, zoo_names

MANY = """\
name: multi
model:
  kind: decoder
  vocab_size: 259
  d_model: 32
  n_heads: 4
  n_layers: 2
  n_layer: 3
  positional: rotary
  ffn: {type: swiglu, hiden: 3}
train:
  lr: 1.0e-3
  steps: 10
  schedule: {warmup: 20}
"""


def _err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_validate_reports_every_problem_in_one_pass_in_file_order(tmp_path, capsys):
    spec = tmp_path / "multi.yaml"
    spec.write_text(MANY)
    assert main(["validate", str(spec)]) == 2
    lines = _err(capsys)
    where = [re.match(r".*multi\.yaml:(\d+):(\d+): ([\w.]+): ", line).groups() for line in lines]
    assert [(int(a), k) for a, _, k in where] == [
        (8, "model.n_layer"), (9, "model.positional.type"), (10, "model.ffn.hiden"), (12, "train.lr"),
        (14, "train.schedule.warmup")]
    assert "did you mean 'n_layers'?" in lines[0] and "did you mean 'rope'?" in lines[1]
    assert "did you mean 'hidden'?" in lines[2] and "did you mean 'train.optimizer.lr'?" in lines[3]
    assert "warmup (20) is longer than steps (10)" in lines[4]
    # train stops at the first, with the same line
    assert main(["train", str(spec), "--out-dir", str(tmp_path / "run")]) == 2
    assert _err(capsys) == ["error: " + lines[0]] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, suggestion", [
    ("train.lr=0.1", "train.optimizer.lr"), ("train.warmup=10", "train.schedule.warmup"),
    ("model.steps=5", "train.steps"), ("train.d_model=64", "model.d_model"), ("model.window=8", None),
])
def test_a_key_at_the_wrong_level_suggests_where_it_belongs(override, suggestion, capsys):
    assert main(["validate", "gpt-tiny", override]) == 2
    [line] = _err(capsys)
    assert (f"did you mean '{suggestion}'?" in line) if suggestion else "did you mean" not in line, line


def test_a_block_called_by_its_description_suggests_its_name():
    """``rotary`` is rope (class Rotary): the registry reads the block's class name and description."""
    with pytest.raises(registry.RegistryError, match=r"unknown positional 'rotary'; did you mean 'rope'\?"):
        registry.get("positional", "rotary")
    with pytest.raises(registry.RegistryError) as info:
        registry.get("positional", "position")  # in several descriptions: no guess
    assert "did you mean" not in str(info.value)


def test_validate_reads_the_data_as_train_does(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nextends: gpt-tiny\ntrain:\n  data: {type: text, path: /no/such/corpus.txt}\n")
    assert main(["validate", str(spec)]) == 2
    [line] = _err(capsys)
    assert re.match(r".*spec\.yaml:4:9: train\.data: /no/such/corpus\.txt: no such file", line), line
    assert main(["validate", str(spec), "--skip-data"]) == 0


def test_validate_print_shows_the_resolved_spec(capsys):
    assert main(["validate", "gpt2-medium", "model.n_layers=2", "--print"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# gpt2-medium: resolved")
    data = yaml.safe_load(text)
    assert "extends" not in data and data["model"]["n_layers"] == 2 and data["model"]["d_model"] == 1024
    assert load_spec(data) == load_spec("gpt2-medium", ["model.n_layers=2"])


def test_list_zoo_names_every_zoo_spec(capsys):
    assert main(["list", "zoo"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert listed == zoo_names()
