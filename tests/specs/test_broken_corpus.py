"""The broken-spec corpus: every file in tests/specs/broken/ fails with one clear line.

Each ``NN-name.yaml`` starts with ``# expect: TEXT`` (a part of the one-line message)
and may add ``# overrides: KEY=VALUE ...`` (the case is about overrides). Each case
must fail the same way through ``load_spec`` and ``assemble`` (a SpecError), ``stackform validate``
and ``stackform train`` (exit code 2, one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from stackform.assemble import assemble
from stackform.assemble.cli import main
from stackform.specs import SpecError, load_spec

CORPUS = Path(__file__).parent / "broken"
CASES = sorted(CORPUS.glob("[0-9][0-9]-*.yaml"))


def _header(path: Path) -> tuple[str, list[str]]:
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    expect = lines[0].removeprefix("# expect: ")
    assert lines[0].startswith("# expect: ") and expect, f"{path.name}: the first line must be '# expect: ...'"
    overrides = lines[1].removeprefix("# overrides: ").split() if lines[1:2] and lines[1].startswith("# overrides:") else []
    return expect, overrides


def _check_message(message: str, path: Path, expect: str, overrides: list[str]) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert expect in message, f"{path.name}: expected {expect!r} in {message!r}"
    where = re.match(r"(.+?):(\d+):(\d+): ", message)
    assert where, f"{path.name}: no file:line:col in {message!r}"
    file = where.group(1)
    # the case's own file, a file it extends (the error is there, and says so), or an override
    assert file == os.path.relpath(path) or Path(file).resolve().parent == CORPUS / "parts" or (
        overrides and file.startswith("override '")), message


def test_the_corpus_is_large_and_covers_each_kind_of_mistake():
    names = " ".join(p.name for p in CASES)
    assert len(CASES) >= 40
    for topic in ("tab", "duplicate-key", "unknown-", "missing-", "zero-", "negative-", "encoder-decoder-without-decoder",
                  "task-does-not-fit", "override-", "extends-cycle", "extends-missing", "plugin-module-missing"):
        assert topic in names, topic


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_load_spec_raises_one_spec_error(path):
    expect, overrides = _header(path)
    with pytest.raises(SpecError) as info:
        load_spec(str(path), overrides)
    _check_message(str(info.value), path, expect, overrides)
    assert len(info.value.issues) == 1, [str(i) for i in info.value.issues]  # one mistake per case
    with pytest.raises(SpecError) as again:  # the model API: the same error, before anything is built
        assemble(str(path), overrides=overrides)
    assert str(again.value) == str(info.value)


# On the command line an argument without '=' is a spec name, not an override, so the cases
# about such overrides are for the Python API only.
CLI_CASES = [p for p in CASES if all("=" in o for o in _header(p)[1])]


@pytest.mark.parametrize("path", CLI_CASES, ids=[p.stem for p in CLI_CASES])
def test_validate_exits_2_with_one_line(path, capsys):
    expect, overrides = _header(path)
    code = main(["validate", str(path), *overrides])
    out, err = capsys.readouterr()
    assert code == 2 and "ok" not in out
    assert len(err.strip().splitlines()) == 1, err
    _check_message(err.strip().removeprefix("error: "), path, expect, overrides)


@pytest.mark.parametrize("path", CLI_CASES, ids=[p.stem for p in CLI_CASES])
def test_train_exits_2_before_training(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run folder would appear here
    expect, overrides = _header(path)
    code = main(["train", str(path.resolve()), *overrides])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expect in err
    assert list(tmp_path.iterdir()) == [], "no run folder for a spec that does not validate"


def test_traceback_only_with_debug(capsys):
    path = str(next(p for p in CASES if "unknown-attention" in p.name))
    assert main(["inspect", path]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "inspect", path]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "unknown attention 'mah'" in err
