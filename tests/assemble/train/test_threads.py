"""``--threads N`` on train and bench; the header names the threads and the load and warns on a busy machine."""

from __future__ import annotations

import pytest
import torch
import yaml

from stackform.assemble.cli import main
from stackform.assemble.train import machine


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _load(monkeypatch, load: float, cores: int = 2):
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(machine, "cores", lambda: cores)


def test_the_warning_comes_only_when_the_load_exceeds_the_cores(monkeypatch, restore_threads):
    torch.set_num_threads(2)
    _load(monkeypatch, 1.9)
    assert machine.busy_warning() is None
    assert machine.describe() == "2 threads, load average 1.90 on 2 cores"
    _load(monkeypatch, 5.5)
    warning = machine.busy_warning()
    assert "busier than its cores (load average 5.50 on 2 cores, 2 torch threads); try --threads 1" in warning


def test_train_threads_flag_sets_torch_threads_and_the_header_says_so(tmp_path, make_spec, monkeypatch, capsys,
                                                                      restore_threads):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(make_spec(steps=2, samples=0)))
    _load(monkeypatch, 7.0)
    torch.set_num_threads(2)
    assert main(["train", str(spec), "--out-dir", str(tmp_path / "run"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert torch.get_num_threads() == 1
    assert "1 thread, load average 7.00 on 2 cores" in err.splitlines()[0]
    assert "warning: this machine is busier than its cores" in err.splitlines()[1]


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_thread_count_is_refused_by_the_parser(value, capsys):
    with pytest.raises(SystemExit) as info:  # argparse: usage, then one error line
        main(["train", "gpt-tiny", "--threads", value])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "argument --threads:" in err.splitlines()[-1] and "Traceback" not in err


def test_bench_prints_threads_and_load_and_warns(monkeypatch, capsys, restore_threads):
    _load(monkeypatch, 9.0)
    assert main(["bench", "--preset", "tiny", "--steps", "1", "--repeats", "1", "--warmup", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "(1 thread, load average 9.00 on 2 cores)" in out and "busier than its cores" in out
