"""A plugin the user names in the current folder is imported by its path, alone: the folder never
goes on sys.path, so nothing else in it can shadow a module imported later."""

from __future__ import annotations

import sys
import uuid

import pytest

from stackform import registry


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The current folder (not on sys.path) and a unique module-name prefix; imported names are dropped after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    prefix = f"plug_{uuid.uuid4().hex[:8]}"
    before = set(sys.modules)
    yield tmp_path, prefix
    for name in set(sys.modules) - before:
        if name.startswith(prefix) or name == "netrc":
            sys.modules.pop(name, None)


def test_a_file_in_the_current_folder_is_imported_alone(here):
    folder, prefix = here
    (folder / f"{prefix}_blocks.py").write_text("import sys\nSEEN = list(sys.path)\n")
    (folder / f"{prefix}_helper.py").write_text("VALUE = 1\n")
    path_before = list(sys.path)
    registry.import_plugins([f"{prefix}_blocks"])
    module = sys.modules[f"{prefix}_blocks"]
    assert module.__file__ == str(folder / f"{prefix}_blocks.py")
    assert sys.path == path_before and module.SEEN == path_before  # not even while it ran
    with pytest.raises(ImportError):  # its neighbour is not importable by accident
        __import__(f"{prefix}_helper")


def test_a_package_in_the_current_folder_and_its_submodule(here):
    folder, prefix = here
    (folder / prefix).mkdir()
    (folder / prefix / "__init__.py").write_text("")
    (folder / prefix / "sub.py").write_text("from . import other\nVALUE = other.VALUE\n")
    (folder / prefix / "other.py").write_text("VALUE = 7\n")
    registry.import_plugins([f"{prefix}.sub"])
    assert sys.modules[f"{prefix}.sub"].VALUE == 7


def test_an_installed_module_wins_over_a_file_of_the_same_name(here):
    folder, _ = here
    sys.modules.pop("netrc", None)
    (folder / "netrc.py").write_text("raise RuntimeError('the planted file ran')\n")
    registry.import_plugins(["netrc"])
    assert not sys.modules["netrc"].__file__.startswith(str(folder))


def test_a_failing_file_is_one_error_and_not_left_half_imported(here):
    folder, prefix = here
    (folder / f"{prefix}_bad.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(registry.RegistryError, match=r"failed while importing: ValueError: boom"):
        registry.import_plugins([f"{prefix}_bad"])
    assert f"{prefix}_bad" not in sys.modules
    with pytest.raises(registry.RegistryError, match="could not be imported"):
        registry.import_plugins([f"{prefix}_absent"])


def test_unimported_lists_what_a_viewer_must_refuse(here):
    _, prefix = here
    assert registry.unimported(["sys", f"{prefix}_x", 3]) == [f"{prefix}_x", "3"]
    assert registry.unimported(None) == [] and registry.unimported("sys") == []
