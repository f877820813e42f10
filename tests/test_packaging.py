"""Packaging: every sub-package is listed in pyproject.toml, and a plain install carries the zoo."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"registry": "stackform.registry", "specs": "stackform.specs", "blocks": "stackform.blocks",
          "assemble": "stackform.assemble"}


def test_every_subpackage_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {package: folder for folder, package in MAPPED.items()}
    found = set()
    for folder, package in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == set(config["packages"])


def test_plain_install_has_zoo_and_schema(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, timeout=300, capture_output=True)
    code = ("from stackform.specs import zoo_names, load_spec; from pathlib import Path; import stackform.specs as s; "
            "assert 'gpt-tiny' in zoo_names(); load_spec('transformer-base'); "
            "assert (Path(s.__file__).parent / 'schema' / 'stackform.schema.json').is_file(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "STACKFORM_NO_PLUGINS": "1"})
    assert result.stdout.strip() == "ok", result.stderr
