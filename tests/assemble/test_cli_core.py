"""The core commands: validate, list, inspect, schema; errors exit 2 with one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stackform.assemble import assemble
from stackform.assemble.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok_and_error(capsys, tmp_path):
    code, out, _ = run(capsys, "validate", "gpt-tiny", "transformer-tiny")
    assert code == 0 and "gpt-tiny: ok" in out and "transformer-tiny: ok" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nmodel:\n  kind: decoder\n  vocab_size: 9\n  d_model: 8\n  n_heads: 2\n  n_layers: 1\n"
                   "  attention: mah\n")
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2
    assert "bad.yaml:8:14: model.attention.type: unknown attention 'mah'; did you mean 'mha'?" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_validate_with_overrides(capsys):
    code, _, err = run(capsys, "validate", "gpt-tiny", "model.d_model=130")
    assert code == 2 and "model.n_heads: d_model (130) must be divisible by n_heads (4)" in err


def test_list(capsys):
    code, out, _ = run(capsys, "list", "attention")
    assert code == 0 and "gqa" in out and "n_kv_heads" in out and "rope" not in out
    code, _, err = run(capsys, "list", "atention")
    assert code == 2 and "did you mean 'attention'" in err


def test_inspect_counts_match_the_model(capsys):
    code, out, _ = run(capsys, "inspect", "gpt-tiny")
    total = assemble("gpt-tiny").num_parameters()
    assert code == 0 and f"parameters: {total:,}" in out and "FLOPs per token" in out


def test_inspect_transformer_base_is_the_papers_size(capsys):
    code, out, _ = run(capsys, "inspect", "transformer-base")
    line = next(l for l in out.splitlines() if l.startswith("parameters:"))
    millions = int(line.split()[1].replace(",", "")) / 1e6
    assert code == 0 and 60 <= millions <= 66  # the paper reports 65M


def test_inspect_checkpoint(capsys, tmp_path):
    from stackform.assemble import save

    save(assemble("gpt-tiny", overrides=["model.n_layers=1"]), tmp_path / "model.safetensors")
    code, out, _ = run(capsys, "inspect", str(tmp_path))
    assert code == 0 and out.startswith("gpt-tiny: decoder")


def test_schema(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out)["$defs"]["AttentionBlock"]


def test_console_script_and_module_entry_points():
    for argv in (["stackform", "--version"], [sys.executable, "-m", "stackform.assemble", "--version"]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stdout.startswith("stackform "), result.stderr


def test_errors_have_no_traceback_unless_debug(capsys):
    code, _, err = run(capsys, "inspect", "nosuchspec")
    assert code == 2 and err.startswith("error: nosuchspec: no spec file or zoo spec") and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "inspect", "nosuchspec")
    assert code == 2 and "Traceback" in err


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", "gpt-tiny", "--context", "lots"])
    assert info.value.code == 2 and "invalid int value: 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["validate", "gpt-tiny", "--debug", "model.d_model=130"],
    ["inspect", "gpt-tiny", "--context", "8", "model.d_model=130"],
    ["train", "gpt-tiny", "--quiet", "model.d_model=130"],
])
def test_flags_may_sit_between_spec_and_overrides(capsys, argv):
    code, _, err = run(capsys, *argv)  # the override after the flag is read, so the spec error is reported
    assert code == 2 and "d_model (130) must be divisible by n_heads (4)" in err
    assert "unrecognized arguments" not in err


def test_inspect_without_a_spec_names_only_the_spec(capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.rstrip().endswith("required: SPEC_OR_CKPT")


@pytest.mark.parametrize("where", ["below_a_file", "a_file_named_like_a_folder"])
def test_schema_out_that_cannot_be_written(capsys, tmp_path, where):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "schema.json" if where == "below_a_file" else tmp_path / "file" / ""
    code, _, err = run(capsys, "schema", "--out", str(out) + ("/" if where != "below_a_file" else ""))
    assert code == 2 and err.startswith("error: --out ") and ": cannot write (" in err and len(err.splitlines()) == 1


def test_schema_out_a_folder_writes_the_schema_file_in_it(capsys, tmp_path):
    code, out, _ = run(capsys, "schema", "--out", str(tmp_path))
    assert code == 0 and (tmp_path / "stackform.schema.json").is_file() and "$schema=stackform.schema.json" in out
