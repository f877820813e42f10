"""The ``packed documents`` row of issue 14's variants table: a row of packed documents (document
ids: the document mask and restarted positions) against the plain causal path, same shape.

    python tests/benchmarks/bench_packed_variant.py [--seqs 1024 4096] [--repeats 5] [--documents 8]

Issue 14's decoder (stackform.assemble.bench.variants: d_model 256, 8 heads, 2 layers, batch 1,
rope), forward + backward; the packed row holds ``--documents`` documents of random lengths
(uniform cut points). Step time: the median over repeats of (packed / plain), timed in alternation
in one process; peak memory: VmHWM of a fresh process running two steps, above what it held
before the model was built (as ``stackform bench --variants``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from stackform.assemble.bench.variants import Variant, _high_water


class Packed(Variant):
    """The plain variant's model, called with the document ids of ``documents`` packed documents."""

    def __init__(self, seq: int, documents: int, device: torch.device):
        super().__init__("plain (rope, causal)", [], 0.0, seq, device)
        self.name = f"packed ({documents} documents)"
        g = torch.Generator().manual_seed(1)
        cuts = torch.randperm(seq - 1, generator=g)[:documents - 1] + 1
        starts = torch.zeros(seq, dtype=torch.long)
        starts[cuts] = 1
        self.documents = starts.cumsum(0)[None].to(device)  # [1, seq]
        from stackform.blocks import dispatch

        picked: list[str] = []
        choose = dispatch.choose
        dispatch.choose = lambda *a, **kw: picked.append(choose(*a, **kw)) or picked[-1]
        try:
            with torch.no_grad():
                self.model(self.ids[:, :-1], document_ids=self.documents)
        finally:
            dispatch.choose = choose
        self.kernel = picked[0]

    def step(self) -> None:
        logits = self.model(self.ids[:, :-1], document_ids=self.documents)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), self.ids[:, 1:].flatten()).backward()
        self.model.zero_grad(set_to_none=True)


def _child(kind: str, seq: int, documents: int) -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    before = _high_water()
    cpu = torch.device("cpu")
    v = Packed(seq, documents, cpu) if kind == "packed" else Variant("plain", [], 0.0, seq, cpu)
    for _ in range(2):
        v.step()
    print(json.dumps({"peak": _high_water() - before}))


def _peak(kind: str, seq: int, documents: int) -> int:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(seq), str(documents)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})  # as bench --variants
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--documents", type=int, default=8)
    ap.add_argument("--child", nargs=3, default=None)
    args = ap.parse_args()
    if args.child:
        return _child(args.child[0], int(args.child[1]), int(args.child[2]))
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    for seq in args.seqs:
        peaks = {k: _peak(k, seq, args.documents) for k in ("plain", "packed")}
        cpu = torch.device("cpu")
        plain, packed = Variant("plain (rope, causal)", [], 0.0, seq, cpu), Packed(seq, args.documents, cpu)
        times = {"plain": [], "packed": []}
        for r in range(args.repeats + 1):  # the first round warms up
            order = [("plain", plain), ("packed", packed)][:: 1 if r % 2 else -1]
            for name, v in order:
                start = time.perf_counter()
                v.step()
                if r:
                    times[name].append(time.perf_counter() - start)
        ratios = [b / a for a, b in zip(times["plain"], times["packed"])]
        print(f"T={seq}: plain {statistics.median(times['plain']):.3f} s ({plain.kernel}), "
              f"{packed.name} {statistics.median(times['packed']):.3f} s ({packed.kernel}): "
              f"{statistics.median(ratios):.2f}x time (ratios {min(ratios):.2f}-{max(ratios):.2f}), "
              f"peak {peaks['plain'] / 2**20:.0f} MB / {peaks['packed'] / 2**20:.0f} MB "
              f"= {peaks['packed'] / peaks['plain']:.2f}x memory; load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
