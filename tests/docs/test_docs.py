"""The docs stay true: generated catalogues are current and examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

from stackform import registry

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_blocks_catalogue_is_current():
    from stackform.assemble.cli.list_cmd import markdown

    assert (DOCS / "blocks.md").read_text() == markdown(), "run: stackform list --markdown > docs/blocks.md"


def test_spec_field_reference_is_current():
    from stackform.specs.reference import markdown

    text = (DOCS / "specs.md").read_text()
    section = text.split("<!-- fields:begin -->\n")[1].split("<!-- fields:end -->")[0]
    assert section == markdown(), "run: stackform schema --markdown, and paste it between the markers"


def test_extending_example_runs_as_written():
    code = re.search(r"```python\n(.*?)```", (DOCS / "extending.md").read_text(), re.S).group(1)
    try:
        exec(compile(code, "docs/extending.md", "exec"), {"__name__": "docs_example"})  # our own doc's code
        assert registry.get("ffn", "relu2").doc == "Squared-ReLU MLP: (relu(x W1))^2 W2."
    finally:
        registry.unregister("ffn", "relu2")
