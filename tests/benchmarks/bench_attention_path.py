"""Benchmark: asking for attention weights must not slow the default path.

Times the forward pass of a GPT-shaped decoder three ways, alternating, in one run:

  default  stackform, return_attention=False (SDPA)
  weights  stackform, return_attention=True (the explicit softmax path)
  hand     a hand-written pre-norm GPT calling F.scaled_dot_product_attention directly,
           with the same weights (its logits are checked equal first)

and prints medians and the ratios default/hand (overhead of the assembled model on the
default path) and weights/default (what asking for the weights costs). Also times
forward + backward for default vs hand, and counts the aten ops each forward dispatches
(the same kernels: any gap is Python overhead, visible when the GPU is launch-bound).
The model is the zoo's gpt-tiny with the shape the hand-written GPT holds: learned
positions, a GELU MLP of 512 and max_len 256 (DEFAULT_SET; today's gpt-tiny has rotary
positions and SwiGLU). ``--set`` overrides go on top; a shape the hand-written GPT cannot
hold is one error line (exit 2). A script, not a test:

    python tests/benchmarks/bench_attention_path.py [--device cuda] [--batch 8] [--seq 256]
    python tests/benchmarks/bench_attention_path.py --set model.d_model=768 --set model.n_heads=12 \
        --set model.n_layers=12 --set model.ffn.hidden=3072 --set model.max_len=1024 --seq 1024  # GPT-2 small
"""

from __future__ import annotations

import argparse
import collections
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from stackform.assemble import assemble
from stackform.assemble.errors import StackformError

# gpt-tiny as it was measured in docs/inspect.md, the shape HandGPT holds; --set goes on top
DEFAULT_SET = ("model.positional=learned", "model.ffn.type=mlp", "model.ffn.hidden=512", "model.max_len=256")


class HandLayer(nn.Module):
    """One pre-norm layer written by hand: LN -> qkv -> SDPA(causal) -> out, LN -> MLP(gelu)."""

    def __init__(self, d: int, heads: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)  # 3 x [b, t, h, hd]
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, d))  # [b, t, d]
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class HandGPT(nn.Module):
    def __init__(self, vocab: int, max_len: int, d: int, heads: int, layers: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.layers = nn.ModuleList(HandLayer(d, heads, hidden, eps) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for layer in self.layers:
            x = layer(x)
        return self.ln_f(x) @ self.wte.weight.T  # [b, t, vocab], tied head


def unsupported(spec) -> str | None:
    """Why HandGPT cannot hold a model of ``spec`` (a ModelSpec), or None when it can."""
    att, ffn, norm = spec.attention, spec.ffn, spec.norm
    checks = [
        (spec.kind == "decoder", f"model.kind is {spec.kind}, not decoder"),
        (spec.positional.type == "learned", f"model.positional is {spec.positional.type}, not learned"),
        (spec.residual.type == "pre", f"model.residual is {spec.residual.type}, not pre"),
        (norm.type == "layernorm" and norm.params.bias, f"model.norm is {norm.type}, not a layernorm with bias"),
        (att.type == "mha" and att.params.bias and not att.params.qk_norm and att.params.window is None
         and att.params.scale is None, f"model.attention is {att.type} {att.params!r}, not a plain mha with bias"),
        (ffn.type == "mlp" and ffn.params.activation == "gelu" and ffn.params.bias,
         f"model.ffn is {ffn.type}, not a GELU mlp with bias"),
        (spec.tie_embeddings, "model.tie_embeddings is false"),
        (not spec.layers, "model.layers gives per-layer overrides"),
        (spec.head_dim in (None, spec.d_model // spec.n_heads), f"model.head_dim {spec.head_dim} is not d_model / n_heads"),
    ]
    failed = [why for ok, why in checks if not ok]
    return "; ".join(failed) if failed else None


def hand_copy(model) -> HandGPT:
    """A HandGPT holding ``model``'s weights."""
    spec = model.spec.model
    hand = HandGPT(spec.vocab_size, spec.max_len, spec.d_model, spec.n_heads, len(model.stack.layers),
                   model.stack.layers[0].ffn.up.out_features, spec.norm.params.eps)
    names = {"wte.weight": "embed.weight", "wpe.weight": "stack.positional.weight",
             "ln_f.weight": "stack.final_norm.weight", "ln_f.bias": "stack.final_norm.bias"}
    ours = {"ln1": "self_res.norm", "ln2": "ffn_res.norm", "qkv": "self_attn.qkv", "out": "self_attn.out",
            "up": "ffn.up", "down": "ffn.down"}
    for i in range(len(hand.layers)):
        for mine, theirs in ours.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{mine}.{p}"] = f"stack.layers.{i}.{theirs}.{p}"
    state = model.state_dict()
    hand.load_state_dict({mine: state[theirs] for mine, theirs in names.items()})
    return hand.to(next(model.parameters()).device)


class OpCounter(TorchDispatchMode):
    """Counts the aten ops a call dispatches (views included; they launch no kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def compute_ops(fn) -> collections.Counter:
    """The non-view aten ops of one call of ``fn``."""
    views = ("view", "t.default", "transpose", "split", "unbind", "_unsafe_view", "permute")
    with torch.no_grad(), OpCounter() as counter:
        fn()
    return collections.Counter({k: v for k, v in counter.ops.items() if not any(w in k for w in views)})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, inner: int) -> float:
    """Seconds per call of ``fn``, averaged over ``inner`` calls."""
    sync(device)
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    sync(device)
    return (time.perf_counter() - start) / inner


def fail(message: str) -> None:
    """One error line on stderr, exit 2."""
    print(f"bench_attention_path: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec override (dims)")
    parser.add_argument("--inner", type=int, default=0, help="calls per timing (default: 3 on cpu, 20 on cuda)")
    args = parser.parse_args()
    for flag in ("batch", "seq", "rounds"):
        if getattr(args, flag) < 1:
            fail(f"--{flag} {getattr(args, flag)}: give a positive number")
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            fail(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        model = assemble("gpt-tiny", overrides=[*DEFAULT_SET, *args.set], seed=0, device=device).eval()
    except (StackformError, RuntimeError) as exc:  # a bad --set or --device
        fail(str(exc).splitlines()[0])
    inner = args.inner or (20 if device.type == "cuda" else 3)
    spec = model.spec.model
    why = unsupported(spec)
    if why:
        fail(f"the hand-written GPT cannot hold this model: {why} (the script starts from DEFAULT_SET; --set may change dims, not blocks)")
    if args.seq > spec.max_len:
        fail(f"--seq {args.seq} is longer than max_len {spec.max_len}; add --set model.max_len={args.seq}")
    hand = hand_copy(model).eval()
    ids = torch.randint(0, 256, (args.batch, args.seq), device=device)  # [b, t]
    model.check_inputs = False  # the id-range check costs a host sync; the hand-written model has none
    with torch.no_grad():
        diff = (model(ids) - hand(ids)).abs().max().item()
    if not diff < 1e-3:
        fail(f"the hand-written copy disagrees with the model: max |logits diff| {diff:.3g}")

    ops = {"default": compute_ops(lambda: model(ids)), "hand": compute_ops(lambda: hand(ids))}
    sdpa = sum(v for k, v in ops["default"].items() if "scaled_dot_product" in k)

    def train_step(net) -> None:
        logits = net(ids)
        F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten()).backward()

    forward = {
        "default": lambda: model(ids),
        "weights": lambda: model(ids, return_attention=True),
        "hand": lambda: hand(ids),
    }
    backward = {"default": lambda: train_step(model), "hand": lambda: train_step(hand)}
    times: dict[str, list[float]] = {f"fwd {k}": [] for k in forward} | {f"fwd+bwd {k}": [] for k in backward}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is dropped
        order = list(forward) if round_ % 2 == 0 else list(reversed(forward))
        with torch.no_grad():
            for name in order:
                t = timed(forward[name], device, inner)
                if round_:
                    times[f"fwd {name}"].append(t)
        for name in (list(backward) if round_ % 2 == 0 else list(reversed(backward))):
            t = timed(backward[name], device, inner)
            if round_:
                times[f"fwd+bwd {name}"].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}, " \
        f"{torch.get_num_threads()} threads"
    print(f"GPT (d_model {spec.d_model}, {spec.n_layers} layers, {spec.n_heads} heads, learned positions, "
          f"GELU MLP {spec.ffn.params.hidden or 'default'}), batch {args.batch} x seq {args.seq}, {device.type} ({where}), torch {torch.__version__}, "
          f"median of {args.rounds} rounds x {inner} calls, max |logits diff| vs hand-written {diff:.1e}")
    only = dict(ops["default"] - ops["hand"]), dict(ops["hand"] - ops["default"])
    print(f"  compute ops per forward: default {sum(ops['default'].values())} ({sdpa} SDPA), "
          f"hand {sum(ops['hand'].values())}; only in default {only[0]}, only in hand {only[1]}")
    for k, v in med.items():
        print(f"  {k:<18} {v * 1e3:8.3f} ms")
    print(f"  default / hand (forward)          {med['fwd default'] / med['fwd hand']:.3f}")
    print(f"  default / hand (forward+backward) {med['fwd+bwd default'] / med['fwd+bwd hand']:.3f}")
    print(f"  weights / default (forward)       {med['fwd weights'] / med['fwd default']:.3f}")


if __name__ == "__main__":
    main()
