"""Bad flag values and a full disk: one line, exit 2, no traceback, nothing already saved lost.

Every command that takes ``--device`` refuses devices nothing can run on (meta, a backend this
machine lacks); text flags refuse bytes that are not UTF-8 (the shell hands them over as lone
surrogates); picture paths that name a folder are refused before any work; a write that fails
(ENOSPC) is one line and keeps the previous file.
"""

from __future__ import annotations

import argparse
import errno
import os

import pytest
import torch

from malformed import one_error_line, snapshot
from stackform.assemble import assemble, load, save
from stackform.assemble import checkpoint as checkpoint_module
from stackform.assemble.checkpoint import atomic_write, read_checkpoint
from stackform.assemble.cli import main, parser
from stackform.assemble.errors import WriteError
from stackform.assemble.train.console import MetricsLog

MODEL = {"kind": "decoder", "vocab_size": 259, "max_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1,
         "pad_id": 256, "bos_id": 257, "eos_id": 258}
TRAIN = {"steps": 4, "batch_size": 2, "seq_len": 8, "eval_every": 2, "eval_steps": 1, "log_every": 1,
         "schedule": {"type": "constant", "warmup": 0}, "samples": 0}
S2S = {"kind": "encoder_decoder", "vocab_size": 259, "max_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1,
       "pad_id": 256, "bos_id": 257, "eos_id": 258}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    save(assemble({"name": "d", "model": MODEL}, seed=0), folder / "dec.safetensors")
    s2s_train = {"task": "seq2seq", "data": {"type": "builtin", "name": "copy"}}
    save(assemble({"name": "s", "model": S2S, "train": s2s_train}, seed=0), folder / "s2s.safetensors")
    (folder / "spec.yaml").write_text(str({"name": "d", "model": MODEL, "train": TRAIN}).replace("'", '"'))
    return folder


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _device_commands(ckpts, tmp_path) -> dict[str, list[str]]:
    """argv (without --device) of every command that takes --device."""
    return {
        "train": ["train", str(ckpts / "spec.yaml"), "--out-dir", str(tmp_path / "run"), "--quiet"],
        "generate": ["generate", str(ckpts / "dec.safetensors"), "--max-new", "2"],
        "eval": ["eval", str(ckpts / "dec.safetensors"), "--batches", "1"],
        "attention": ["attention", str(ckpts / "dec.safetensors"), "--text", "hi", "--out", str(tmp_path / "a.png")],
        "bench": ["bench", "--preset", "tiny", "--steps", "1", "--repeats", "1", "--warmup", "0"],
    }


def _commands_with(flag: str) -> set[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name for name, p in sub.choices.items() if any(flag in a.option_strings for a in p._actions)}


@pytest.mark.parametrize("device", ["meta", "xla", "mps", "cpu:3", "cuda:99", "gpu0", "", " cpu"])
def test_every_command_refuses_an_unusable_device_in_one_line(device, ckpts, tmp_path, capsys):
    commands = _device_commands(ckpts, tmp_path)
    assert set(commands) == _commands_with("--device")  # a new command with --device is listed here
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")  # then mps is usable, not a bad value
    for name, argv in commands.items():
        before = snapshot(tmp_path)
        code, _, err = _run(capsys, argv + ["--device", device])
        assert code == 2 and one_error_line(err), (name, err)
        assert ("--device" in err or "train.device" in err) and repr(device) in err, (name, err)
        assert snapshot(tmp_path) == before, name  # refused before any folder is made
        assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("flag,argv", [
    ("--prompt", ["generate", "{dec}", "--max-new", "2", "--prompt"]),
    ("--src", ["generate", "{s2s}", "--max-new", "2", "--src"]),
    ("--text", ["attention", "{dec}", "--out", "{tmp}/a.png", "--text"]),
    ("--tgt", ["attention", "{s2s}", "--out", "{tmp}/a.png", "--text", "ab", "--tgt"]),
    ("--title", ["compare", "{tmp}", "--out", "{tmp}/a.png", "--title"]),
])
@pytest.mark.parametrize("raw", [b"\xff", b"ok \xe9t\xe9", b"\xc3", b"\xed\xa0\x80"])
def test_text_flags_refuse_bytes_that_are_not_utf8(flag, argv, raw, ckpts, tmp_path, capsys):
    """Python hands non-UTF-8 argv bytes over as lone surrogates (surrogateescape); the line names the byte."""
    value = os.fsdecode(raw)
    args = [a.format(dec=ckpts / "dec.safetensors", s2s=ckpts / "s2s.safetensors", tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, args + [value])
    with pytest.raises(UnicodeDecodeError) as info:
        raw.decode("utf-8")
    bad = info.value.start
    assert code == 2 and one_error_line(err) and out == "", err
    assert f"{flag}: not UTF-8 text (byte 0x{raw[bad]:02x} at byte offset {bad})" in err
    assert not (tmp_path / "a.png").exists()


def test_a_utf8_prompt_still_works(ckpts, capsys):
    code, out, _ = _run(capsys, ["generate", str(ckpts / "dec.safetensors"), "--max-new", "2", "--prompt", "héllo",
                                 "--temperature", "0", "--device", "cpu"])
    assert code == 0 and out.startswith("héllo")


@pytest.mark.parametrize("argv", [
    ["inspect", "{spec}", "--diagram", "{tmp}/taken.svg"],
    ["compare", "{run}", "--out", "{tmp}/taken.png"],
    ["attention", "{dec}", "--text", "hi", "--out", "{tmp}/taken.png"],
])
def test_a_picture_path_that_is_a_folder_is_refused_before_any_work(argv, ckpts, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')
    (run / "spec.yaml").write_text((ckpts / "spec.yaml").read_text())
    taken = tmp_path / os.path.basename(argv[-1])
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    args = [a.format(spec=ckpts / "spec.yaml", run=run, dec=ckpts / "dec.safetensors", tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, args)
    assert code == 2 and one_error_line(err) and "is a folder; give a file name" in err, err
    assert out == "" and snapshot(tmp_path) == before


def _dev_full():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here to simulate a full disk")


def full_disk_after(monkeypatch, writes: int, name: str) -> None:
    """Once ``writes`` atomic writes of ``name`` are done, the disk is full: every later atomic
    write fails with ENOSPC (its temporary file's bytes go to /dev/full)."""
    real, done = checkpoint_module._open_temp, []

    def open_temp(tmp, flags):
        fd = real(tmp, flags)
        if len(done) >= writes:
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        elif tmp.name.startswith(f".{name}."):
            done.append(tmp.name)
        return fd

    monkeypatch.setattr(checkpoint_module, "_open_temp", open_temp)


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_previous_checkpoint(ckpts, tmp_path, monkeypatch,
                                                                                 capsys):
    """The disk fills up after the step-2 checkpoint: the step-4 save fails in one line (exit 2),
    model.safetensors is still the complete step-2 checkpoint, and no temporary file is left."""
    _dev_full()
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    out = tmp_path / "run"
    spec = tmp_path / "spec.yaml"
    spec.write_text((ckpts / "spec.yaml").read_text().replace('"samples": 0', '"samples": 0, "save_every": 2'))
    full_disk_after(monkeypatch, 1, ".train_state.pending.safetensors")  # the last file of a save
    code, _, err = _run(capsys, ["train", str(spec), "--out-dir", str(out), "--quiet"])
    assert code == 2 and one_error_line(err), err
    assert "cannot write (No space left on device)" in err and "unchanged" in err, err
    assert isinstance(load(out), torch.nn.Module)  # its checksum holds: the previous checkpoint, whole
    assert read_checkpoint(out / "model.safetensors")[1]["step"] == "2"
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_atomic_write_errors_are_one_line_and_still_oserrors(tmp_path, monkeypatch):
    _dev_full()
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    full_disk_after(monkeypatch, 0, "f.bin")
    with pytest.raises(WriteError, match=r"f\.bin: cannot write \(No space left on device\); the file there "
                                         r"before, if any, is unchanged$") as info:
        atomic_write(path, b"new" * 1000)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    monkeypatch.undo()
    (tmp_path / "d").mkdir()
    with pytest.raises(WriteError, match=r"d: cannot write \(Is a directory\)"):
        atomic_write(tmp_path / "d", b"x")


def test_a_full_disk_while_logging_metrics_is_one_line(tmp_path):
    _dev_full()
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log._handle.close()
    log._handle = open("/dev/full", "w")
    with pytest.raises(WriteError, match=r"metrics\.jsonl: cannot write \(No space left on device\)"):
        log.write({"step": 1, "loss": 2.0})
    log.close()  # the failure was reported once; closing does not raise it again


@pytest.mark.parametrize("alpha", ["99999999999999999999999", "nan", "inf", "-11"])
def test_a_length_penalty_out_of_range_is_one_line(alpha, ckpts, capsys):
    """((5 + len) / 6) ** alpha overflowed a float (a traceback) for a huge --alpha."""
    code, out, err = _run(capsys, ["generate", str(ckpts / "s2s.safetensors"), "--src", "ab", "--max-new", "3",
                                   "--beam", "2", "--alpha", alpha])
    assert code == 2 and one_error_line(err) and out == "", err
    assert "--alpha: " in err and "give a number from -10 to 10" in err


@pytest.mark.parametrize("argv", [
    ["compare", "{bad}", "--out", "{tmp}/c.png"],
    ["import-hf", "{bad}", "--out", "{tmp}/imported"],
    ["import-hf", "{hf}", "--out", "{bad}"],
    ["export-hf", "{dec}", "--out", "{bad}"],
])
@pytest.mark.parametrize("bad", ["{long}", "{tmp}/a-file/below"], ids=["name too long", "through a file"])
def test_paths_the_system_refuses_are_one_line(argv, bad, ckpts, tmp_path, capsys):
    """A 300-character name (ENAMETOOLONG) or a path through a file (ENOTDIR) made Path.exists() raise."""
    (tmp_path / "a-file").write_text("a file, not a folder")
    hf = tmp_path / "hf"
    assert main(["export-hf", str(ckpts / "dec.safetensors"), "--out", str(hf)]) == 0
    capsys.readouterr()
    names = dict(tmp=tmp_path, hf=hf, dec=ckpts / "dec.safetensors", long="x" * 300)
    args = [a.format(bad=bad.format(**names), **names) for a in argv]
    before = snapshot(tmp_path)
    code, out, err = _run(capsys, args)
    assert code == 2 and one_error_line(err), err
    assert snapshot(tmp_path) == before
