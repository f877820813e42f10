"""The docs stay true: generated catalogues are current and examples run as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackform import registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def blocks(path: Path, lang: str) -> list[str]:
    """The fenced code blocks of one language ("" for plain fences) in a Markdown file, in order."""
    found: list[str] = []
    fence: str | None = None  # the language of the block we are in, None outside blocks
    for line in path.read_text().splitlines(keepends=True):
        if fence is None:
            if line.startswith("```"):
                fence, body = line[3:].strip(), []
        elif line.rstrip() == "```":
            if fence == lang:
                found.append("".join(body))
            fence = None
        else:
            body.append(line)
    return found


def run_doc_code(code: str, where: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": "docs_example"})  # our own doc's code


# What the `stackform` console script runs: unlike `python -m`, it does not put the current folder on sys.path.
CONSOLE_SCRIPT = "import sys; del sys.path[0]; from stackform.assemble.cli import main; sys.exit(main())"


def stackform(*args: str, cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_blocks_catalogue_is_current():
    from stackform.assemble.cli.list_cmd import markdown

    assert (DOCS / "blocks.md").read_text() == markdown(), "run: stackform list --markdown > docs/blocks.md"


def test_spec_field_reference_is_current():
    from stackform.specs.reference import markdown

    text = (DOCS / "specs.md").read_text()
    section = text.split("<!-- fields:begin -->\n")[1].split("<!-- fields:end -->")[0]
    assert section == markdown(), "run: stackform schema --markdown, and paste it between the markers"


def test_extending_example_runs_as_written():
    code = blocks(DOCS / "extending.md", "python")[0]
    try:
        run_doc_code(code, "docs/extending.md")
        assert registry.get("ffn", "relu2").doc == "Squared-ReLU MLP: (relu(x W1))^2 W2."
        assert "relu2" in [e.name for e in registry.list_blocks("ffn")]
    finally:
        registry.unregister("ffn", "relu2")


def test_extending_positional_example_runs_as_written():
    code = next(c for c in blocks(DOCS / "extending.md", "python") if "learned_alibi" in c)
    try:
        run_doc_code(code, "docs/extending.md")
        assert registry.get("positional", "learned_alibi").cls.biases
    finally:
        registry.unregister("positional", "learned_alibi")


@pytest.fixture
def my_blocks(tmp_path, monkeypatch):
    """docs/extending.md's relu2 class saved as my_blocks.py, and its my-gpt.yaml, in a scratch folder."""
    example = blocks(DOCS / "extending.md", "python")[0]
    (tmp_path / "my_blocks.py").write_text(example.split("\nmodel = assemble(")[0])
    spec = next(y for y in blocks(DOCS / "extending.md", "yaml") if "plugins: [my_blocks]" in y)
    (tmp_path / "my-gpt.yaml").write_text(spec)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    registry.unregister("ffn", "relu2")
    sys.modules.pop("my_blocks", None)


def test_extending_plugin_spec_validates_as_documented(my_blocks):
    ok = stackform("validate", "my-gpt.yaml", cwd=my_blocks)  # the current folder is importable
    assert ok.returncode == 0 and ok.stdout.strip() == "my-gpt.yaml: ok (my-gpt, decoder)", ok.stdout + ok.stderr
    elsewhere = my_blocks / "elsewhere"
    elsewhere.mkdir()
    missing = stackform("validate", "../my-gpt.yaml", cwd=elsewhere)
    assert missing.returncode == 2
    assert "plugins.0: plugin module 'my_blocks' could not be imported: No module named 'my_blocks'" in missing.stderr
    ok = stackform("validate", "../my-gpt.yaml", cwd=elsewhere, pythonpath="..")
    assert ok.returncode == 0, ok.stderr


def test_extending_plugin_flag_for_checkpoints(my_blocks, monkeypatch):
    """The commands that start from a checkpoint import a spec's plugins only when --plugin names them."""
    from stackform.assemble import assemble, save

    monkeypatch.syspath_prepend(str(my_blocks))
    save(assemble("my-gpt.yaml"), "runs/my-gpt/model.safetensors")
    refused = stackform("generate", "runs/my-gpt", "--prompt", "def ", "--max-new", "3", cwd=my_blocks)
    assert refused.returncode == 2 and "the stored spec needs plugins: my_blocks" in refused.stderr
    assert "--plugin my_blocks" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    ok = stackform("generate", "runs/my-gpt", "--prompt", "def ", "--max-new", "3", "--plugin", "my_blocks",
                   cwd=my_blocks)
    assert ok.returncode == 0 and ok.stdout.startswith("def "), ok.stderr
    listed = stackform("list", "ffn", "--plugin", "my_blocks", cwd=my_blocks)
    assert listed.returncode == 0 and "relu2" in listed.stdout
    for bad, message in (("../evil", "not a module name"), ("no_such_module", "could not be imported")):
        err = stackform("list", "--plugin", bad, cwd=my_blocks)
        assert err.returncode == 2 and message in err.stderr and len(err.stderr.strip().splitlines()) == 1


def test_extending_checkpoint_load_example(my_blocks, monkeypatch):
    from stackform.assemble import assemble, save

    monkeypatch.syspath_prepend(str(my_blocks))
    model = assemble("my-gpt.yaml")
    save(model, "runs/my-gpt/model.safetensors")
    code = next(c for c in blocks(DOCS / "extending.md", "python") if "import my_blocks" in c)
    run_doc_code(code, "docs/extending.md")


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    readme = ROOT / "README.md"
    spec = next(y for y in blocks(readme, "yaml") if "name: my-gpt" in y)
    (tmp_path / "my-gpt.yaml").write_text(spec)
    monkeypatch.chdir(tmp_path)
    run_doc_code(blocks(readme, "python")[0], "README.md")
    assert (tmp_path / "gpt.safetensors").exists()


def test_specs_examples_validate_as_written(tmp_path, monkeypatch):
    from stackform.specs import SpecError, load_spec

    spec, child = blocks(DOCS / "specs.md", "yaml")[:2]
    (tmp_path / "my-gpt.yaml").write_text(spec)
    (tmp_path / "gpt-rope.yaml").write_text(child)
    monkeypatch.chdir(tmp_path)
    assert load_spec("my-gpt.yaml").name == "my-gpt"
    assert load_spec("gpt-rope.yaml").model.positional.type == "rope"
    commands = next(c for c in blocks(DOCS / "specs.md", "") if c.startswith("stackform validate my-gpt.yaml"))
    ok, bad, error = commands.splitlines()
    assert load_spec("my-gpt.yaml", ok.split()[3:]).model.d_model == 192
    with pytest.raises(SpecError) as exc:
        load_spec("my-gpt.yaml", bad.split()[3:])
    assert str(exc.value) == error


def test_extending_layer_kind_example_runs_as_written(tmp_path):
    from stackform.assemble.inspect import block_rows
    from stackform.assemble.viz.architecture import architecture
    from stackform.assemble.viz.diagram import draw_architecture

    code = next(c for c in blocks(DOCS / "extending.md", "python") if '"ffn_first"' in c)
    assert len(code.splitlines()) <= 45
    try:
        run_doc_code(code, "docs/extending.md")
        from stackform.assemble import assemble

        model = assemble("gpt-tiny", layer="ffn_first", n_layers=2, device="meta")
        rows = block_rows(model)
        assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
        assert [role for role, _ in architecture(model)[0].groups[0].sublayers] == ["feed-forward", "self-attention"]
        assert draw_architecture(model, tmp_path / "a.svg").stat().st_size > 10_000
    finally:
        registry.unregister("layer", "ffn_first")
