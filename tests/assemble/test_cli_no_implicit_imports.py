"""A downloaded run folder runs no code: every command, started from inside a folder full of modules
named like the optional dependencies of torch and stackform (triton, tabulate, onnx, ...) and like
every module a command imports, imports none of them. One process per command, a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackform.assemble import export_hf, train

SPEC = {
    "name": "tiny", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 16, "d_model": 16, "n_heads": 2,
                              "n_layers": 1, "pad_id": 256, "bos_id": 257, "eos_id": 258},
    "train": {"steps": 2, "batch_size": 2, "seq_len": 8, "eval_every": 2, "eval_steps": 1, "log_every": 1, "schedule": {"type": "cosine", "warmup": 1},
              "samples": 0},
}

# Modules that torch, matplotlib and stackform look for lazily and that are absent here: found by
# running every command with an import hook that logs the top-level names nothing could find.
# These are what a file in the current folder could have supplied before the fix (triton under
# generate/inspect/attention/export-hf/train; tabulate, gmpy2, flint, colorama, ...).
PROBED = ("_winapi colorama cuda dill envwrap flint fx2trt_oss gmpy gmpy2 monkeytype msvcrt onnx onnx_tf "
          "onnxruntime onnxscript opt_einsum org pandas pydot pynvml scipy sklearn sentencepiece tabulate "
          "tensorflow tensorrt tokenizers torch2trt torchcomms torchdistx torchvision transformers tree "
          "triton tvm winreg xarray IPython").split()
NAMED = "my_blocks"  # the one module the user names (--plugin): it alone may run


def planted_names() -> list[str]:
    """PROBED, plus the top-level name of every module this process has imported (torch, numpy, yaml,
    safetensors, json, ...): under ``python -m`` a file of any of those names would have shadowed it."""
    import stackform.assemble.cli  # noqa: F401  (every command's module)
    import stackform.assemble.viz.diagram  # noqa: F401

    names = {name.partition(".")[0] for name in sys.modules} | set(PROBED)
    # stackform itself: `python -m stackform.assemble` looks it up before any of its code runs
    # (docs/security.md: use the stackform command, or python -P); __main__, builtins, sys are not files
    return sorted(n for n in names - {"stackform", "__main__", "builtins", "sys"} if n.isidentifier())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, Path]:
    """(a trained run folder holding planted modules and an HF export, the folder markers go to)."""
    root = tmp_path_factory.mktemp("downloaded")
    run, markers = root / "run", root / "markers"
    markers.mkdir()
    os.environ["STACKFORM_NO_BAR"] = "1"
    train(SPEC, out_dir=run, quiet=True)
    export_hf(run, run / "hf")
    (run / "my.yaml").write_text(yaml.safe_dump({**SPEC, "name": "mine"}))
    for i, name in enumerate(planted_names()):
        code = f"open({str(markers / name)!r}, 'w').close()\nraise ImportError('planted {name}')\n"
        if i % 2:  # both shapes a module can have: a file and a package folder
            (run / name).mkdir(exist_ok=True)
            (run / name / "__init__.py").write_text(code)
        else:
            (run / f"{name}.py").write_text(code)
    (run / f"{NAMED}.py").write_text(f"open({str(markers / NAMED)!r}, 'w').close()\n")
    return run, markers


COMMANDS = [
    ["validate", "my.yaml"],
    ["list"],
    ["schema"],
    ["inspect", "."],
    ["inspect", "my.yaml", "--diagram", "arch.svg"],
    ["generate", ".", "--max-new", "3", "--seed", "0"],
    ["attention", ".", "--text", "ab", "--out", "attn.png", "--html", "attn.html"],
    ["compare", ".", "--out", "curves-compared.png"],
    ["export-hf", ".", "--out", "hf-again"],
    ["import-hf", "hf", "--out", "imported"],
    ["train", "--resume", ".", "--out-dir", "resumed", "train.steps=3", "--quiet"],
    ["bench", "--preset", "tiny", "--steps", "1", "--repeats", "1", "--warmup", "0", "--batch", "1", "--seq", "4"],
]
# Every command, one after another in one fresh process (a process each would cost a torch import
# each, ~40 s of CPU): a module probed and found missing is looked for again by the next command,
# so whatever a command would import from the folder leaves its marker at the first command that
# looks for it. The driver lives outside the folder, so only the CLI decides what sys.path holds.
DRIVER = """
import json, os, sys
from stackform.assemble.cli import main
markers = sys.argv[1]
for argv in json.loads(sys.argv[2]):
    code = main(argv)
    found = sorted(os.listdir(markers))
    for name in found:
        os.unlink(os.path.join(markers, name))
    print(json.dumps({"argv": argv, "code": code, "imported": found}), flush=True)
"""


def _imported(markers: Path) -> list[str]:
    """The planted modules that ran (and clear their markers for the next test)."""
    found = sorted(p.name for p in markers.iterdir())
    for name in found:
        (markers / name).unlink()
    return found


def _env() -> dict[str, str]:
    return {**os.environ, "STACKFORM_NO_BAR": "1", "STACKFORM_NO_PLUGINS": "1", "PYTHONPATH": ""}


def test_no_command_imports_a_module_from_the_folder_it_runs_in(folder, tmp_path):
    run, markers = folder
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run([sys.executable, str(driver), str(markers), json.dumps(COMMANDS)], cwd=run, env=_env(),
                          capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"argv"')]
    for result in results:
        assert result["imported"] == [], f"{result['argv']} imported modules from the folder it ran in"
    assert _imported(markers) == [], "the command after the last one listed crashed importing them"
    assert done.returncode == 0 and len(results) == len(COMMANDS), done.stderr[-3000:]
    assert [r["code"] for r in results] == [0] * len(COMMANDS), done.stderr[-3000:]


def test_python_dash_m_imports_nothing_from_the_folder(folder):
    """``python -m stackform.assemble`` starts with the current folder first on sys.path: it is taken off
    before torch (or anything but stackform itself) is imported. Training covers build, step, save, sample."""
    run, markers = folder
    argv = [sys.executable, "-m", "stackform.assemble", "train", "my.yaml", "--out-dir", "trained",
            "train.steps=1", "train.eval_every=1"]
    done = subprocess.run(argv, cwd=run, env=_env(), capture_output=True, text=True, timeout=300)
    assert _imported(markers) == []
    assert done.returncode == 0, done.stderr[-2000:]


def test_only_the_named_plugin_runs(folder):
    """``--plugin my_blocks`` imports ./my_blocks.py (by its path) and nothing else of the folder."""
    run, markers = folder
    stackform = Path(sys.executable).with_name("stackform")
    done = subprocess.run([str(stackform), "inspect", ".", "--plugin", NAMED], cwd=run, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert _imported(markers) == [NAMED]
    assert done.returncode == 0, done.stderr[-2000:]


def test_compare_never_imports_the_plugins_a_run_folder_lists(tmp_path, monkeypatch, capsys):
    """A run folder without model.safetensors: its spec.yaml's plugins: are refused, not imported,
    even when the module is importable; naming it with --plugin is what imports it."""
    from stackform.assemble.cli import main

    name = f"listed_{os.getpid()}"
    marker = tmp_path / "ran"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable: still not imported
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 5.0}\n')
    (run / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "plugins": [name]}))
    try:
        assert main(["compare", str(run), "--out", str(tmp_path / "c.png")]) == 2
        err = capsys.readouterr().err
        assert f"the run's spec needs plugins: {name}" in err and f"--plugin {name}" in err
        assert len(err.strip().splitlines()) == 1
        assert not marker.exists() and name not in sys.modules
        assert main(["compare", str(run), "--out", str(tmp_path / "c.png"), "--plugin", name]) == 0
        assert marker.exists()
    finally:
        sys.modules.pop(name, None)
