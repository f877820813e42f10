"""``stackform bench --variants``: masks and position biases against the plain causal path, side by side.

A decoder (d_model 256, 8 heads, 2 layers, batch 1: issue 14's shape; bf16 autocast on CUDA)
trains forward + backward at each length with each variant, all built in one process and timed in
alternation (the order reversed every other repeat), against ``plain`` (rope, causal) in the same
run: the step-time ratio is the median over repeats of (variant / plain) in that repeat. Peak
memory is measured first, per variant in a fresh process (CPU: peak resident memory, VmHWM, above
what the process held before the model was built; CUDA: torch.cuda.max_memory_allocated above the
weights), so one variant's peak never hides another's. Each row names the kernel the dispatcher picked.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from stackform.registry import StackformError

SHAPE = ["model.d_model=256", "model.n_heads=8", "model.n_layers=2", "model.dropout=0.0",
         "model.positional=rope", "model.ffn={type: mlp, activation: gelu, hidden: 1024}"]


def variants(seq: int) -> dict[str, tuple[list[str], float]]:
    """name: (spec overrides on top of SHAPE, share of padding)."""
    return {
        "plain (rope, causal)": ([], 0.0),
        "alibi": (["model.positional=alibi"], 0.0),
        "relative_bias (T5)": (["model.positional=relative_bias"], 0.0),
        "sliding_window 256": (["model.mask=[causal, {type: sliding_window, window: 256}]"], 0.0),
        "prefix_lm (T/4)": ([f"model.mask=[{{type: prefix_lm, prefix_len: {seq // 4}}}]"], 0.0),
        "padding 30%": (["model.mask=[causal, padding]"], 0.3),
    }


class Variant:
    """One model and its training step (forward + backward; no optimizer, as in the issue's table)."""

    def __init__(self, name: str, overrides: list[str], pads: float, seq: int, device: torch.device):
        from stackform.assemble import assemble
        from stackform.blocks import dispatch

        self.name, self.samples = name, []
        model = assemble("gpt-tiny", overrides=SHAPE + [f"model.max_len={seq}"] + overrides, seed=0, device=device)
        model.check_inputs = False
        self.model = model.train()
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 256, (1, seq + 1), generator=g).to(device)
        self.mask = None
        if pads:
            self.mask = torch.ones(1, seq, dtype=torch.bool, device=device)
            self.mask[:, seq - int(pads * seq):] = False  # right padding
        picked: list[str] = []
        choose = dispatch.choose
        dispatch.choose = lambda *a, **kw: picked.append(choose(*a, **kw)) or picked[-1]
        try:
            with torch.no_grad():
                self.model(self.ids[:, :-1], self.mask)
        finally:
            dispatch.choose = choose
        self.kernel = picked[0] if picked else "?"

    def step(self) -> None:
        with torch.autocast(self.ids.device.type, dtype=torch.bfloat16, enabled=self.ids.device.type == "cuda"):
            logits = self.model(self.ids[:, :-1], self.mask)  # [1, t, vocab]
        labels = self.ids[:, 1:] if self.mask is None else self.ids[:, 1:].masked_fill(~self.mask, -100)
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
        self.model.zero_grad(set_to_none=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_child(name: str, seq: int, device: str, steps: int) -> dict:
    """Run in a fresh process: the peak memory of ``steps`` training steps of one variant."""
    import stackform.assemble  # noqa: F401  (imported before the baseline: only the model's memory counts)

    from .variant_peers import PEERS, Peer

    dev = torch.device(device)
    peer_of = {peer: variant for variant, (peer, _) in PEERS.items()}
    with open("/proc/self/statm") as handle:
        before = int(handle.read().split()[1]) * resource.getpagesize()
    if name in peer_of:
        v = Peer(peer_of[name], seq, dev)
    else:
        overrides, pads = variants(seq)[name]
        v = Variant(name, overrides, pads, seq, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        resident = torch.cuda.memory_allocated(dev)
    for _ in range(steps):
        v.step()
    _sync(dev)
    if dev.type == "cuda":
        return {"peak": torch.cuda.max_memory_allocated(dev) - resident}
    return {"peak": _high_water() - before}


def _high_water() -> int:
    """Peak resident bytes of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as handle:
        line = next(x for x in handle if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def peak_memory(name: str, seq: int, device: torch.device, threads: int) -> int:
    cmd = [sys.executable, "-m", "stackform.assemble.bench.variants", name, str(seq), device.type, str(threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # freed tensors go back to the system
    child = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if child.returncode:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackformError(f"bench --variants: measuring the memory of {name} at {seq} failed: {last}")
    return json.loads(child.stdout.strip().splitlines()[-1])["peak"]


def run_variants(seqs: list[int], device: torch.device, repeats: int, warmup: int, memory: bool,
                 log=print, with_peers: bool = False) -> list[dict]:
    """Time every variant against plain at each length (and, ``with_peers``, Hugging Face's same
    variant: variant_peers.py); returns the rows of the table."""
    from .variant_peers import peers

    rows = []
    for seq in seqs:
        built = [Variant(name, o, p, seq, device) for name, (o, p) in variants(seq).items()]
        others = peers([v.name for v in built], seq, device, log) if with_peers else []
        names = [v.name for v in built + others]
        peaks = {n: peak_memory(n, seq, device, torch.get_num_threads()) for n in names} if memory else {}
        built += others
        for v in built:
            for _ in range(warmup):
                v.step()
        _sync(device)
        for r in range(repeats):
            for v in built if r % 2 == 0 else built[::-1]:
                _sync(device)
                start = time.perf_counter()
                v.step()
                _sync(device)
                v.samples.append(time.perf_counter() - start)
            log(f"  T={seq} repeat {r + 1}/{repeats}: " + ", ".join(f"{v.name} {v.samples[-1]:.2f}s" for v in built))
        plain = built[0]
        for v in built:
            med = statistics.median(v.samples)
            peer = next((p for p in others if p.variant == v.name), None)
            rows.append({
                "seq": seq, "variant": v.name, "kernel": v.kernel, "median_s": med,
                "spread": (max(v.samples) - min(v.samples)) / 2 / med,
                "time_ratio": statistics.median(a / b for a, b in zip(v.samples, plain.samples)),
                "peak_mb": peaks.get(v.name, 0) / 2**20,
                "memory_ratio": peaks[v.name] / peaks[plain.name] if peaks else float("nan"),
                # stackform's speed against Hugging Face's same variant (> 1: stackform is faster)
                "vs_peer": statistics.median(a / b for a, b in zip(peer.samples, v.samples)) if peer else None,
                "peer": peer.name if peer else None,
            })
        del built
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'T':>6}  {'variant':<22}{'kernel':<9}{'step':>9}{'spread':>8}{'time':>8}{'peak mem':>11}{'memory':>8}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['seq']:>6}  {r['variant']:<22}{r['kernel']:<9}{r['median_s']:>8.3f}s{r['spread']:>7.1%}"
                     f"{r['time_ratio']:>7.2f}x{r['peak_mb']:>8.0f} MB{r['memory_ratio']:>7.2f}x")
    for r in rows:
        if r.get("vs_peer") is not None:
            lines.append(f"T={r['seq']} {r['variant']}: stackform {r['vs_peer']:.2f}x the speed of {r['peer']} "
                         "(median of paired ratios)")
    return "\n".join(lines)


if __name__ == "__main__":  # the memory-measuring child: NAME SEQ DEVICE THREADS
    torch.set_num_threads(int(sys.argv[4]))
    print(json.dumps(_peak_child(sys.argv[1], int(sys.argv[2]), sys.argv[3], steps=2)))
