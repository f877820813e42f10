"""Errors the operating system raises for a path (a name too long, a path through a file) and names
that are not UTF-8 reach the user as one line, exit 2, never a traceback."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from stackform.assemble.cli import main

LONG = "x" * 300  # longer than NAME_MAX (255) on every common file system


@pytest.mark.parametrize("argv", [
    ["train", "gpt-tiny", "--resume", LONG],
    ["train", "gpt-tiny", "--resume", "README.md/run"],
])
def test_a_path_the_system_refuses_is_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("a file, not a folder")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_name_that_is_not_utf8_prints_on_a_strict_stdout(tmp_path):
    """Under PYTHONIOENCODING=utf-8:strict a surrogate-escaped argv used to crash the print."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", STACKFORM_NO_PLUGINS="1")
    name = os.fsencode(tmp_path) + b"/\xff.yaml"
    done = subprocess.run([sys.executable, "-m", "stackform.assemble", "validate", name], env=env,
                          capture_output=True, timeout=120)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "\\udcff.yaml" in err or "\\xff.yaml" in err, err
