"""Checkpoints of a distributed run are those of one process: the full (unsharded) model and
optimizer state, gathered to rank 0 for saving and handed back to every rank on resume, plus
each rank's RNG stream. The files load under any world size.

Train-state RNG keys: ``rng.torch`` is rank 0's CPU stream (what one process resumes with);
``rank.<r>.rng.torch`` and ``rank.<r>.rng.cuda`` are rank r's own. A rank the file has no
stream for (resuming under more processes) derives a fresh one from ``rng.torch`` and its rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .distributed import Ranks, rank_seed

OptimizerState = dict[int, dict[str, torch.Tensor]]  # parameter index (single-process order) -> its state


@dataclass
class StateLayout:
    """A model's state-dict names in order, and its tied aliases (alias -> first name)."""

    names: list[str]
    aliases: dict[str, str]


def state_layout(model: nn.Module) -> StateLayout:
    """Names and aliases of ``model``'s state dict (by object identity; taken before sharding)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    state = model.state_dict(keep_vars=True)
    for name, tensor in state.items():
        if id(tensor) in first:
            aliases[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return StateLayout(list(state), aliases)


class Weights:
    """What ``checkpoint.save`` needs of a model (``spec``, ``state_dict()``), for gathered weights."""

    def __init__(self, spec: Any, state: dict[str, torch.Tensor]):
        self.spec, self._state = spec, state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module, ranks: Ranks) -> dict[str, torch.Tensor] | None:
    """The whole model's state on rank 0's CPU (tied aliases share one tensor); None elsewhere. Collective."""
    if not ranks.sharded:
        return dict(model.state_dict()) if ranks.is_main else None
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    full = get_model_state_dict(model, options=_full_options())
    if not ranks.is_main:
        return None
    out: dict[str, torch.Tensor] = {}
    for name in ranks.layout.names:
        source = ranks.layout.aliases.get(name)
        out[name] = out[source] if source is not None else full[name]
    return out


def _fqn_of(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, ranks: Ranks) -> OptimizerState | None:
    """FSDP: the unsharded AdamW state on rank 0 (None elsewhere), keyed like one process's. Collective.
    Other modes: None (the optimizer's own state is already whole)."""
    if not ranks.sharded:
        return None
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    full = get_optimizer_state_dict(model, optimizer, options=_full_options())
    if not ranks.is_main:
        return None
    order = [fqn for group in full["param_groups"] for fqn in group["params"]]
    index = {fqn: i for i, fqn in enumerate(order)}
    return {index[fqn]: entry for fqn, entry in full["state"].items()}


def set_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: OptimizerState) -> None:
    """FSDP: load an unsharded, single-process-keyed AdamW state; each rank keeps its shard. Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    fqn = _fqn_of(model)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [fqn[id(p)] for p in g["params"]]}
              for g in optimizer.param_groups]
    full = {"state": {fqn[id(params[i])]: entry for i, entry in state.items()}, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(full_state_dict=True))


def _cuda_state(ranks: Ranks) -> torch.Tensor | None:
    return torch.cuda.get_rng_state(ranks.device) if ranks.device.type == "cuda" else None


def rng_states(ranks: Ranks) -> dict[str, torch.Tensor]:
    """Every rank's RNG streams for the train state (on rank 0; {} elsewhere). Collective."""
    cpu = ranks.all_gather(torch.get_rng_state())
    cuda_state = _cuda_state(ranks)
    cuda = ranks.all_gather(cuda_state) if cuda_state is not None else []
    if not ranks.is_main:
        return {}
    tensors = {"rng.torch": cpu[0]}
    if cuda:
        tensors["rng.cuda.0"] = cuda[0]  # one process resuming on cuda:0 continues rank 0's stream
    for r in range(ranks.world):  # copies: safetensors refuses two names on one tensor
        tensors[f"rank.{r}.rng.torch"] = cpu[r].clone()
        if cuda:
            tensors[f"rank.{r}.rng.cuda"] = cuda[r].clone()
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor], ranks: Ranks) -> None:
    """Set this rank's RNG streams from a train state saved under any world size."""
    own = tensors.get(f"rank.{ranks.rank}.rng.torch")
    if own is None and ranks.rank == 0:
        own = tensors["rng.torch"]
    if own is None:  # more processes than the run was saved with: a fresh stream of this rank's own
        torch.manual_seed(rank_seed(tensors["rng.torch"].numpy().tobytes(), ranks.rank))
        return
    torch.set_rng_state(own)
    cuda = tensors.get(f"rank.{ranks.rank}.rng.cuda")
    if cuda is None and ranks.rank == 0:
        cuda = tensors.get("rng.cuda.0")
    if cuda is not None and ranks.device.type == "cuda":
        torch.cuda.set_rng_state(cuda, ranks.device)


def state_hooks(model: nn.Module, optimizer: torch.optim.Optimizer, ranks: Ranks) -> dict[str, Any]:
    """Keyword arguments of ``load_train_state`` for this process ({} for one process)."""
    if not ranks.active:
        return {}
    hooks: dict[str, Any] = {"restore_rng": lambda tensors: restore_rng(tensors, ranks)}
    if ranks.sharded:
        hooks["set_optimizer"] = lambda state: set_full_optimizer_state(model, optimizer, state)
    return hooks
