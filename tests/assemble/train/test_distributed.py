"""Distributed training on the CPU (gloo, 2 processes through torchrun): DDP and FSDP2 follow one
process with the same global batch, checkpoints are single files that resume under another world
size, and ``stackform train --nproc 2`` launches torchrun itself.

Dropout is 0 in the comparisons with one process: each rank draws its own dropout masks, so only
a dropout-free run can equal one process (with dropout, a resume under the same world size is
still bitwise exact). The tolerance is 1e-6 on every weight after 4 AdamW steps. Sums over a
batch split across ranks are added in another order (float32 rounding, ~1e-7 of a gradient);
AdamW's m / sqrt(v) amplifies that where successive gradients cancel, so weight differences grow
with the learning rate: measured 3.8e-7 at this spec's lr 3e-4, 1.3e-6 at the default 1e-3.
Adam is blind to a wrong gradient scale, so the logged loss and gradient norm (before clipping)
are compared too: they check that each rank's loss is scaled to the global batch's mean.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml

from stackform.assemble import TrainingError, load, train
from stackform.assemble.checkpoint import read_checkpoint
from stackform.assemble.cli import main
from stackform.assemble.train.commit import find_pair
from stackform.assemble.train.distributed import parallel_mode
from stackform.assemble.train.launch import torchrun_command
from stackform.specs import SpecError, load_spec

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="no gloo backend")

K = 4  # optimizer steps of every run
WORKER = Path(__file__).with_name("distributed_worker.py")
TOLERANCE = 1e-6
LR = 3e-4  # weight differences scale with the step size (see the module docstring)


def spec(kind: str = "decoder", dropout: float = 0.0, **train_fields) -> dict:
    """Tiny, dropout-free unless asked; only the final evaluation (one batch), no samples."""
    model = {"kind": kind, "vocab_size": 259, "max_len": 24, "d_model": 32, "n_heads": 2, "n_layers": 2,
             "dropout": dropout, "pad_id": 256, "bos_id": 257, "eos_id": 258}
    train = {"steps": K, "batch_size": 4, "seq_len": 16, "eval_every": 1000, "eval_steps": 1, "log_every": 1,
             "schedule": {"type": "cosine", "warmup": 1}, "optimizer": {"lr": LR}, "samples": 0}
    if kind == "decoder":
        train["grad_accum"] = 2  # DDP no_sync / FSDP gradient sync on the last micro-batch only
    if kind == "encoder":  # MLM: ranks count different numbers of masked targets
        model.update(vocab_size=260, mask_id=259)
        train.update(task="mlm")
    if kind == "encoder_decoder":  # seq2seq: padded targets, different counts per rank
        train.update(task="seq2seq", seq_len=None,
                     data={"type": "builtin", "name": "reverse", "n_examples": 64, "n_val": 4, "max_length": 8})
    return {"name": f"dist-{kind}", "model": model, "train": {**train, **train_fields}}


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "STACKFORM_NO_BAR": "1", "STACKFORM_CACHE": str(root / "cache")}


def _run(command: list[str], env: dict[str, str], timeout: float = 240) -> None:
    """Run ``command`` in its own session; on a hang kill it and its workers, and show the output."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{command[2:5]} hung for {timeout} s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]


def _torchrun(root: Path, plan: list[dict]) -> None:
    (root / "plan.json").write_text(json.dumps(plan))
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(root / "plan.json")], _env(root))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One launch of 2 processes for every distributed run; the references and resumes in this process."""
    root = tmp_path_factory.mktemp("distributed")
    kinds = ("decoder", "encoder", "encoder_decoder")
    for kind in kinds:
        train(spec(kind), out_dir=root / f"one-{kind}", quiet=True)
    train(spec(), out_dir=root / "one-half", stop_at_step=K // 2, quiet=True)
    shutil.copytree(root / "one-half", root / "one-half-fsdp")
    plan = [{"spec": spec(kind), "out_dir": str(root / f"ddp-{kind}")} for kind in kinds]
    plan += [
        {"spec": spec(parallel="fsdp"), "out_dir": str(root / "fsdp-decoder")},
        {"spec": spec(), "out_dir": str(root / "ddp-half"), "stop_at_step": K // 2},
        {"spec": spec(parallel="fsdp"), "out_dir": str(root / "fsdp-half"), "stop_at_step": K // 2},
        {"resume": str(root / "one-half")},
        {"resume": str(root / "one-half-fsdp"), "overrides": ["train.parallel=fsdp"]},
        {"spec": spec(dropout=0.1), "out_dir": str(root / "ddp-dropout")},
        {"spec": spec(dropout=0.1), "out_dir": str(root / "ddp-dropout-split"), "stop_at_step": K // 2},
        {"resume": str(root / "ddp-dropout-split")},
    ]
    _torchrun(root, plan)
    train(resume=root / "ddp-half", quiet=True)
    train(resume=root / "fsdp-half", quiet=True)
    return root


def assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    a, b = load(a_dir).state_dict(), load(b_dir).state_dict()  # each loads in this one process
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= TOLERANCE, f"{b_dir.name}: largest weight difference {worst:.2e}"


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
def test_ddp_equals_one_process_with_the_same_global_batch(runs, kind):
    assert_same_weights(runs / f"one-{kind}", runs / f"ddp-{kind}")
    one = [json.loads(line) for line in (runs / f"one-{kind}" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(line) for line in (runs / f"ddp-{kind}" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in one] == [r["step"] for r in two]  # rank 0 alone writes the metrics
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a, b)  # the global batch's mean loss
        assert b.get("grad_norm", 0) == pytest.approx(a.get("grad_norm", 0), rel=1e-4)


def test_fsdp_equals_one_process_with_the_same_global_batch(runs):
    assert_same_weights(runs / "one-decoder", runs / "fsdp-decoder")


@pytest.mark.parametrize("saved,resumed", [("ddp-half", "2 -> 1"), ("fsdp-half", "2 -> 1"),
                                           ("one-half", "1 -> 2 (ddp)"), ("one-half-fsdp", "1 -> 2 (fsdp)")])
def test_resume_under_another_world_size_matches_a_straight_run(runs, saved, resumed):
    assert load(runs / saved).spec.train.steps == K
    assert_same_weights(runs / "one-decoder", runs / saved)


def test_resume_under_the_same_world_size_is_exact_with_dropout(runs):
    """Each rank's own dropout stream is saved and restored: 2 + 2 steps == 4 steps, bitwise."""
    a, b = load(runs / "ddp-dropout").state_dict(), load(runs / "ddp-dropout-split").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state, _ = read_checkpoint(runs / "ddp-dropout" / "train_state.safetensors")
    assert not torch.equal(state["rank.0.rng.torch"], state["rank.1.rng.torch"])  # ranks drop different units


@pytest.mark.parametrize("run", ["ddp-decoder", "fsdp-decoder"])
def test_checkpoints_are_the_files_of_one_process(runs, run):
    one_model, one_meta = read_checkpoint(runs / "one-decoder" / "model.safetensors")
    model, meta = read_checkpoint(runs / run / "model.safetensors")
    assert model.keys() == one_model.keys() and meta["stackform.tied"] == one_meta["stackform.tied"]
    one_state, _ = read_checkpoint(runs / "one-decoder" / "train_state.safetensors")
    state, _ = read_checkpoint(runs / run / "train_state.safetensors")
    assert {k for k in state if not k.startswith("rank.")} == set(one_state)
    assert {"rank.0.rng.torch", "rank.1.rng.torch"} <= set(state)
    for key in one_state:
        if key.startswith("optimizer."):  # the full (unsharded) AdamW state, in one process's order
            torch.testing.assert_close(state[key], one_state[key], rtol=0, atol=1e-6, msg=key)
    assert torch.equal(state["rng.data"], one_state["rng.data"])  # one shared data generator
    assert find_pair(runs / run).state.name == "train_state.safetensors"  # rank 0 wrote one whole commit


def test_cli_nproc_relaunches_through_torchrun(runs, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec()))
    command = [sys.executable, "-m", "stackform.assemble", "train", str(path), "--nproc", "2",
               "--out-dir", str(tmp_path / "cli"), "--quiet"]
    _run(command, _env(tmp_path))
    assert_same_weights(runs / "one-decoder", tmp_path / "cli")
    assert {p.name for p in (tmp_path / "cli").iterdir()} >= {"model.safetensors", "train_state.safetensors",
                                                              "metrics.jsonl", "spec.yaml", "samples.txt"}


def test_cli_nproc_checks_before_launching(capsys):
    assert main(["train", "gpt-tiny", "--nproc", "0"]) == 2
    assert "--nproc 0" in capsys.readouterr().err
    assert main(["train", "gpt-tiny", "train.batch_size=6", "--nproc", "4"]) == 2
    assert "train.batch_size (6) is the global batch and must be divisible by the number of processes (4)" \
        in capsys.readouterr().err


def test_cli_nproc_checks_the_run_before_launching(capsys, tmp_path, monkeypatch):
    """A bad --resume folder, --out-dir or an occupied folder is one line before torchrun starts."""
    monkeypatch.setattr("stackform.assemble.train.launch.launch",
                        lambda *a: pytest.fail("torchrun was started"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "model.safetensors").write_bytes(b"")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec()))
    cases = [
        (["train", "--resume", str(tmp_path / "none"), "--nproc", "2"], "not a run folder"),
        (["train", str(path), "--nproc", "2", "--out-dir", ""], "--out-dir: an empty path"),
        (["train", str(path), "--nproc", "2", "--out-dir", str(taken)], "already holds a run"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_world_size_rules():
    assert parallel_mode(load_spec(spec()), 1) == "none"
    assert parallel_mode(load_spec(spec()), 2) == "ddp"
    assert parallel_mode(load_spec(spec(parallel="fsdp")), 4) == "fsdp"
    with pytest.raises(TrainingError, match=r"train\.batch_size \(4\) .* processes \(3\)"):
        parallel_mode(load_spec(spec()), 3)
    with pytest.raises(TrainingError, match="train.parallel: none, but this is one of 2 processes"):
        parallel_mode(load_spec(spec(parallel="none")), 2)
    assert torchrun_command(2, ["x.yaml", "--quiet"])[1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "stackform.assemble", "train",
        "x.yaml", "--quiet"]


def test_fsdp_settings_need_fsdp():
    assert load_spec(spec(parallel="fsdp", fsdp={"param_dtype": "bf16"})).train.fsdp.param_dtype == "bf16"
    with pytest.raises(SpecError, match=r"train\.fsdp: fsdp settings need parallel: fsdp \(parallel is auto\)"):
        load_spec(spec(fsdp={"param_dtype": "bf16"}))
    with pytest.raises(SpecError, match=r"train\.fsdp\.param_dtype"):
        load_spec(spec(parallel="fsdp", fsdp={"param_dtype": "fp16"}))
