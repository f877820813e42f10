"""A Hugging Face model family: config.json <-> spec, and its tensor-name rules.

Each family module (gpt2, bert, llama, t5, marian, qwen3, ...) defines one ``Family`` subclass, and
``convert.FAMILIES`` lists an instance of each. Export finds a spec's family by translating the spec to
that family's config and back: the family whose round trip gives the same architecture
(``canonical``) is the one that can hold the model without loss.
"""

from __future__ import annotations

from typing import Any

from stackform import registry
from stackform.specs import ModelSpec

from .files import InteropError
from .rules import Rule

ACTIVATIONS = {  # Hugging Face activation names -> stackform's
    "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
    "relu": "relu", "silu": "silu", "swish": "silu",
}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
GATED = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}  # gated FFN blocks and their own activation


def gated_ffn(activation: str, hidden: int, bias: bool) -> dict[str, Any]:
    """The gated FFN block for a stackform activation name (gelu_tanh: geglu with that activation)."""
    names = {act: name for name, act in GATED.items()}
    if activation in names:
        return {"type": names[activation], "hidden": hidden, "bias": bias}
    return {"type": "geglu", "activation": activation, "hidden": hidden, "bias": bias}


def gate_activation(block: Any) -> str:
    """The activation of a gated FFN block (its param, else the block's own)."""
    return block.params.activation or GATED[block.type]


KIND_WORDS = {"decoder": "a decoder", "encoder": "an encoder", "encoder_decoder": "an encoder-decoder"}


class Family:
    """Base class of the families: what differs between them is in the subclasses."""

    name = ""
    model_types: tuple[str, ...] = ()
    kind = ""  # the model kind this family holds
    blocks: dict[str, tuple[str, ...]] = {}  # model field -> the block types its config.json can express
    prefix = ""  # the base model's prefix in the *LM* class (``transformer.``, ``model.``, ``bert.``)
    ignore: tuple[str, ...] = ()  # regexes of Hugging Face tensors that carry nothing stackform keeps

    def misfit(self, model: ModelSpec, who: str = "the spec") -> str | None:
        """Why this family cannot hold the spec at all (its kind, a block of a type it lacks), in words;
        None when the kind and block types fit (the round trip through config.json decides the rest)."""
        if model.kind != self.kind:
            return f"{who} is {KIND_WORDS[model.kind]}; {self.name} needs {KIND_WORDS[self.kind]}"
        for field, types in self.blocks.items():
            block = getattr(model, field)
            if block.type not in types:
                return f"{who}'s model.{field} is {block.type}; {self.name} needs {' or '.join(types)}"
        return None

    def spec(self, config: "Config", names: set[str] | None) -> dict[str, Any]:
        """The ``model:`` section for a config.json (``names``: the tensors in the folder, None on export)."""
        raise NotImplementedError

    def normalize(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Hugging Face names as the *LM* class saves them: the base model's prefix added when a
        folder holds the bare base model, and TF-era ``gamma`` / ``beta`` norm names renamed."""
        if self.prefix and not any(name.startswith(self.prefix) for name in tensors):
            tensors = {self.prefix + name: t for name, t in tensors.items()}
        renamed = {}
        for name, tensor in tensors.items():
            if "LayerNorm." in name or "layer_norm." in name:
                name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
            renamed[name] = tensor
        return renamed

    def config(self, model: ModelSpec) -> dict[str, Any]:
        """The config.json for a spec of this family."""
        raise NotImplementedError

    def rules(self, model: ModelSpec) -> list[Rule]:
        """Every stackform tensor <-> Hugging Face tensors rule of this spec."""
        raise NotImplementedError

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        """Regexes of folder tensors that import skips for this spec (a tied head's copy, buffers)."""
        return self.ignore + ((r"^lm_head\.weight$",) if model.tie_embeddings else ())

    def copies(self, model: ModelSpec) -> dict[str, str]:
        """Hugging Face tensors export writes as copies of another (copy name -> source name): weights
        stackform holds once that transformers reads from separate names."""
        return {}

    def generation(self, model: ModelSpec) -> dict[str, Any]:
        """generation_config.json: the special tokens generation needs."""
        out = {"bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id}
        return {k: v for k, v in out.items() if v is not None}


class Config:
    """A config.json with errors that name the file, the key and the family."""

    def __init__(self, data: dict[str, Any], where: str, family: str):
        self.data, self.where, self.family = data, where, family

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def need(self, key: str, *alternatives: str) -> Any:
        for name in (key, *alternatives):
            if self.data.get(name) is not None:
                return self.data[name]
        raise self.error(f"missing '{key}' (a {self.family} config needs it)")

    def error(self, message: str) -> InteropError:
        return InteropError(f"{self.where}: {message}")

    def unsupported(self, key: str, value: Any, supported: str) -> InteropError:
        return self.error(f"{key} {value!r} is not supported for {self.family} (supported: {supported})")

    def activation(self, key: str, default: str) -> str:
        value = self.get(key, default)
        if value not in ACTIVATIONS:
            raise self.unsupported(key, value, ", ".join(sorted(ACTIVATIONS)))
        return ACTIVATIONS[value]

    def token_ids(self, vocab_size: int, **names: str) -> dict[str, int]:
        """Spec token ids from config keys (``pad_id="pad_token_id"``); ids outside the vocabulary are left out."""
        out = {}
        for ours, theirs in names.items():
            value = self.data.get(theirs)
            if isinstance(value, list):  # several eos ids (Llama 3): the spec keeps the first
                value = value[0] if value else None
            if isinstance(value, int) and 0 <= value < vocab_size:
                out[ours] = value
        return out


def _block(block: Any, dims: dict[str, int]) -> dict[str, Any]:
    """A block's dump with equivalent spellings made equal (gqa with all heads is mha, an FFN's size)."""
    data = block.model_dump()
    if "out_bias" in data and data["out_bias"] is None:  # the out projection's bias follows ``bias``
        data["out_bias"] = data["bias"]
    if data["type"] == "mqa":
        data = {**data, "type": "gqa", "n_kv_heads": 1}
    if data["type"] == "gqa" and data.get("n_kv_heads") == dims["n_heads"]:
        data = {k: v for k, v in data.items() if k != "n_kv_heads"} | {"type": "mha"}
    if data["type"] in GATED:
        data = {**data, "type": "gated", "activation": data.get("activation") or GATED[data["type"]]}
    if block.kind == "ffn" and {"hidden", "multiplier", "multiple_of"} <= set(data):
        if data["hidden"] is None:
            size, multiple = int(data["multiplier"] * dims["d_model"]), data["multiple_of"]
            data["hidden"] = multiple * ((size + multiple - 1) // multiple)
        data = {k: v for k, v in data.items() if k not in ("multiplier", "multiple_of")}
    return data


def _final_norm(plan: Any) -> bool:
    """Whether the stack ends with a norm by default: what its layer kind asks for."""
    from stackform.blocks import stack_final_norm

    layer = plan.layer.entry if plan.layer is not None else registry.get("layer", "sequential")
    params = plan.layer.params if plan.layer is not None else layer.params()
    return stack_final_norm(layer.cls, params, plan.residual.entry.cls)


def canonical(model: ModelSpec) -> dict[str, Any]:
    """The architecture of a spec with defaults and per-layer overrides resolved (for comparing).

    Initialization and the MLM mask id (a tokenizer matter, not in config.json) are left out."""
    data = model.model_dump(mode="json")
    for key in ("positional", "residual", "layer", "norm", "attention", "cross_attention", "ffn", "mask", "layers",
                "n_layers", "encoder", "decoder", "init", "init_std", "head_dim", "mask_id"):
        data.pop(key, None)
    data["head_dim"] = model.head_dim_value()
    dims = {"n_heads": model.n_heads, "d_model": model.d_model}
    for side in model.sides:
        plan = model.plan(side)
        causal = side == "decoder"
        final = plan.final_norm if plan.final_norm is not None else _final_norm(plan)
        masks = plan.masks if plan.masks is not None else None
        data[side] = {
            "positional": plan.positional.model_dump(),
            "masks": [m.model_dump() for m in masks] if masks is not None else [{"type": "causal" if causal else "padding"}],
            "final_norm": bool(final),
            "embedding_norm": own_norm.model_dump() if (own_norm := model.side(side).embedding_norm) else None,
            "layers": [{
                "attention": _block(layer.attention, dims),
                "cross_attention": _block(layer.cross_attention or layer.attention, dims)
                if model.kind == "encoder_decoder" and causal else None,
                "ffn": _block(layer.ffn, dims), "norm": _block(layer.norm, dims),
                "residual": _block(layer.residual, dims),
                "layer": layer.layer.model_dump() if layer.layer is not None else None,  # None: sequential
                **({"positional": layer.positional.model_dump()} if layer.positional is not None else {}),
            } for layer in plan.layers],
        }
    return data


def differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every (dotted path, a value, b value) where two nested structures differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}.{i}")]
    return [] if a == b else [(path, a, b)]


def ffn_hidden(model: ModelSpec, block: Any) -> int:
    """The hidden size of an FFN block, computed from its multiplier when ``hidden`` is unset."""
    return _block(block, {"n_heads": model.n_heads, "d_model": model.d_model})["hidden"]


def kv_heads(model: ModelSpec) -> int:
    """Key/value heads of the spec's attention: n_kv_heads of gqa, 1 for mqa, else n_heads."""
    block = _block(model.attention, {"n_heads": model.n_heads, "d_model": model.d_model})
    return block.get("n_kv_heads", model.n_heads)


def full_attention_only(config: Config) -> None:
    """Refuse a config whose layers are not all full attention (``use_sliding_window``, ``layer_types``)."""
    if config.get("use_sliding_window", False):
        raise config.unsupported("use_sliding_window", True, "false (every layer attends to the whole context)")
    other = sorted({t for t in config.get("layer_types", []) if t != "full_attention"})
    if other:
        raise config.unsupported("layer_types", other, "full_attention on every layer")
