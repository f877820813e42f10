"""Several processes, one training run: torch.distributed under torchrun, with DDP or FSDP2.

``start(spec, device)`` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins the process group (NCCL on CUDA, gloo on the CPU)
and returns the ``Ranks`` of this process; without torchrun it is one process and every
method is a no-op. ``Ranks.prepare(model)`` wraps the model in DistributedDataParallel or
shards it with ``fully_shard`` (each layer of each stack, then the root).

``train.batch_size`` is the global batch: every process draws the same global batch from the
shared data generator and keeps its own equal slice, so N processes follow the optimization of
one (``ParallelTrainer`` in ``parallel_loop.py``; checkpoints in ``consolidate.py``).
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from stackform.blocks import Stack
from stackform.specs import Spec

from .device import TrainingError


def world_size() -> int:
    """Processes in this run: the initialized group's size, else torchrun's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise TrainingError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number (set by torchrun)") from None


def parallel_mode(spec: Spec, world: int) -> str:
    """``none`` for one process, else ``ddp`` or ``fsdp``; a one-line error when the spec does not fit ``world``."""
    train = spec.train
    if world == 1:
        return "none"
    if train.parallel == "none":
        raise TrainingError(f"train.parallel: none, but this is one of {world} processes (torchrun); "
                            "use ddp or fsdp (or auto), or run a single process")
    if train.batch_size % world:
        raise TrainingError(f"train.batch_size ({train.batch_size}) is the global batch and must be divisible by "
                            f"the number of processes ({world}); each process takes an equal slice")
    return "ddp" if train.parallel == "auto" else train.parallel


def rank_seed(base: bytes, rank: int) -> int:
    """A seed for ``rank``'s own dropout stream, derived from ``base`` (a seed or an RNG state)."""
    return int.from_bytes(hashlib.sha256(base + b"|rank|" + str(rank).encode()).digest()[:8], "little") >> 1


@dataclass
class Ranks:
    """This process's place in the run: rank, world size, device, how the model is wrapped."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""
    ddp: Any = None  # the DistributedDataParallel wrapper (ddp)
    layout: Any = None  # the model's state-dict names and tied aliases, taken before sharding (fsdp)
    note: str = ""  # FSDP mixed precision, for the header

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp"

    def describe(self) -> str:
        """The header's note on the processes ('' for one process)."""
        if not self.active:
            return ""
        return (f" | {self.mode} x {self.world} processes ({self.backend}{self.note}), "
                f"global batch split {self.world} ways")

    def prepare(self, model: nn.Module, spec: Spec, amp_dtype: torch.dtype | None) -> Any:
        """Wrap ``model`` (DDP) or shard it in place (FSDP2); returns what the training step calls.

        Ranks above 0 then get their own dropout stream (the weights are already identical).
        """
        if not self.active:
            return model
        from .consolidate import state_layout

        if self.mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(model, device_ids=ids, **_no_buffer_sync())
            forward = self.ddp
        else:
            if amp_dtype == torch.float16:
                raise TrainingError("train.precision: fp16 is not supported with train.parallel: fsdp (its loss "
                                    "scaler sees one shard); use bf16 or train.fsdp.param_dtype: bf16")
            self.layout = state_layout(model)
            settings = spec.train.fsdp
            if (settings.param_dtype, settings.reduce_dtype) != ("fp32", "fp32"):
                self.note = f", params {settings.param_dtype}, reduce {settings.reduce_dtype}"
            _shard(model, spec, self.device, self.world)
            forward = model
        if self.rank:
            torch.manual_seed(rank_seed(str(spec.train.seed).encode(), self.rank))
        return forward

    # collectives: every process calls them at the same point

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """``tensor`` reduced over the processes (sum or max), on this process's device."""
        if not self.active:
            return tensor
        out = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return out

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's ``tensor`` (same shape and dtype everywhere), on the CPU, by rank."""
        if not self.active:
            return [tensor]
        local = tensor.detach().to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local)
        return [p.cpu() for p in parts]

    def broadcast_json(self, value: Any) -> Any:
        """Rank 0's ``value`` (JSON-able) on every process; no pickle."""
        if not self.active:
            return value
        data = json.dumps(value).encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, src=0)
        buffer = torch.zeros(int(size), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buffer, src=0)
        return json.loads(bytes(buffer.cpu().tolist()).decode())


def _no_buffer_sync() -> dict[str, bool]:
    """Buffers (rotary tables) are computed alike on every rank: never broadcast them each forward."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}  # torch >= 2.13
    return {"broadcast_buffers": False}


def _shard(model: nn.Module, spec: Spec, device: torch.device, world: int) -> None:
    """FSDP2: each layer (of any layer kind) is its own unit, the root holds the rest (embeddings, head, final norms)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    settings = spec.train.fsdp
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    policy = MixedPrecisionPolicy(param_dtype=dtypes[settings.param_dtype], reduce_dtype=dtypes[settings.reduce_dtype])
    mesh = init_device_mesh(device.type, (world,))
    for stack in [m for m in model.modules() if isinstance(m, Stack)]:
        for layer in stack.layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=settings.reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy)  # the root's weights stay gathered after forward: the loss
    # calls model.head on the hidden states outside forward


def _device(device: torch.device, local_rank: int) -> torch.device:
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise TrainingError(f"train.device: '{device}' names one GPU, but under torchrun each process takes the "
                            f"GPU of its LOCAL_RANK; use cuda or auto")
    if local_rank >= torch.cuda.device_count():
        raise TrainingError(f"LOCAL_RANK {local_rank}, but this machine has {torch.cuda.device_count()} CUDA devices; "
                            "start at most that many processes per node (--nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def start(spec: Spec, device: torch.device) -> Ranks:
    """Join the process group torchrun describes, once per process (a later run, or the user's own group,
    reuses it); one process: ``Ranks()``."""
    world = world_size()
    mode = parallel_mode(spec, world)
    if world == 1:
        return Ranks(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(device, local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
        except ValueError as exc:  # missing MASTER_ADDR / RANK: not started by torchrun
            raise TrainingError(f"WORLD_SIZE is {world} but the process group cannot start ({exc}); "
                                "launch with torchrun or stackform train --nproc N") from None
        atexit.register(_leave)  # one group per process: joining again under torchrun can race stale keys
    return Ranks(dist.get_rank(), world, local_rank, mode, device, dist.get_backend())


def _leave() -> None:
    """At exit: free what holds the group (DDP's reducer and FSDP's modules sit in reference cycles),
    then destroy it, while the interpreter is whole. Left to interpreter shutdown, gloo's threads
    can outlive Python and abort the process ("terminate called without an active exception")."""
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()
