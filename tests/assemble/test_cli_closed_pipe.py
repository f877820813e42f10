"""``stackform inspect ... | head`` and ``compare ... | head``: a reader that leaves ends the command quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from stackform.assemble import train

TINY = {"name": "tiny", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 16, "d_model": 16, "n_heads": 2,
                                  "n_layers": 1},
        "train": {"steps": 2, "batch_size": 2, "seq_len": 8, "eval_steps": 1, "samples": 0,
                  "schedule": {"warmup": 1}}}


def test_commands_end_quietly_when_the_reader_leaves(tmp_path):
    run = tmp_path / "a"
    train(TINY, out_dir=run, quiet=True)
    shutil.copytree(run, tmp_path / "b")
    exe = str(Path(sys.executable).with_name("stackform"))
    commands = {
        "inspect": ["inspect", str(run), "--all"],
        "compare": ["compare", str(run), str(tmp_path / "b"), "--out", str(tmp_path / "c.png")],
    }
    env = {**os.environ, "STACKFORM_NO_BAR": "1"}
    procs = {name: subprocess.Popen([exe, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for name, argv in commands.items()}
    for proc in procs.values():
        proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    for name, proc in procs.items():
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0, (name, err)
        assert "Traceback" not in err and "BrokenPipe" not in err, (name, err)
