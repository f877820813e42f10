"""``import_hf`` (a Hugging Face folder -> a stackform model, spec YAML and checkpoint) and
``export_hf`` (a stackform model or checkpoint -> a Hugging Face folder). Neither needs transformers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from stackform.registry import StackformError
from stackform.specs import ModelSpec, Spec, SpecError, load_spec

from ..build import build_model
from ..checkpoint import load, unique_tensors
from ..models import StackformModel
from . import (bart, bert, biogpt, blenderbot, bloom, camembert, ctrl, data2vec_text, distilbert, gemma, gpt2, gpt_bigcode, gpt_neo, llama, marian, mbart, mt5, mvp, olmo, opt,
               openai_gpt, pegasus, phi3, plbart, qwen2, qwen3, roberta, starcoder2, t5, xlm_roberta)
from .family import Config, Family, canonical, differences
from .files import CONFIG, InteropError, check_import_out, read_config, read_tensors, write_folder
from .rules import Rule, few
from .spec_yaml import write_import
from .tokenizer_files import export_tokenizer, import_tokenizer

# order matters only for export: the first family whose config holds a spec wins (a Phi-3 spec is a LLaMA
# spec, an mT5 spec a T5 one, a GPT-BigCode spec without multi-query a GPT-2 one); DistilBERT comes before
# BERT, which would hold a BERT without token types with a type table of no rows; an XLM-R spec is a RoBERTa one
FAMILIES: list[Family] = [gpt2.FAMILY, distilbert.FAMILY, bert.FAMILY, llama.FAMILY, t5.FAMILY, marian.FAMILY,
                          qwen2.FAMILY, qwen3.FAMILY, gemma.FAMILY, olmo.FAMILY, phi3.FAMILY, starcoder2.FAMILY,
                          gpt_bigcode.FAMILY, bloom.FAMILY, mt5.FAMILY, opt.FAMILY,
                          gpt_neo.FAMILY, roberta.FAMILY, xlm_roberta.FAMILY, bart.FAMILY, mbart.FAMILY,
                          pegasus.FAMILY, camembert.FAMILY, biogpt.FAMILY,
                          plbart.FAMILY, data2vec_text.FAMILY, blenderbot.FAMILY,
                          ctrl.FAMILY, openai_gpt.FAMILY, mvp.FAMILY]
BY_MODEL_TYPE = {model_type: family for family in FAMILIES for model_type in family.model_types}


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _spec_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "-", folder.resolve().name).lstrip("-_.")
    return name or "imported"


def family_of(raw: dict[str, Any], where: str) -> Family:
    """The family of a config.json by its model_type; unknown types raise InteropError."""
    model_type = raw.get("model_type")
    family = BY_MODEL_TYPE.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise InteropError(f"{where}: model_type {model_type!r} is not supported "
                           f"(supported: {', '.join(sorted(BY_MODEL_TYPE))})")
    return family


def spec_of_config(family: Family, raw: dict[str, Any], where: str, names: set[str] | None,
                   name: str) -> dict[str, Any]:
    """The spec (a dict, as spec.yaml shows it) of a config.json of ``family``."""
    try:
        model = _without_none(family.spec(Config(raw, where, family.name), names))
    except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:  # a value of a wrong type, 0 heads
        raise InteropError(f"{where}: not a readable {family.name} config ({type(exc).__name__}: {exc})") from None
    order = list(ModelSpec.model_fields)
    model = dict(sorted(model.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
    data = {"name": name, "description": f"Imported from a Hugging Face {raw.get('model_type')} model.",
            "model": model}
    if model["kind"] == "encoder_decoder":
        data["train"] = {"data": {"type": "builtin", "name": "copy"}}  # seq2seq trains on pairs
    return data


def _validated(data: dict[str, Any], where: str) -> Spec:
    try:
        return load_spec(data)
    except SpecError as exc:
        issue = exc.issues[0]
        raise InteropError(f"{where}: gives an invalid spec: {issue.path}: {issue.message}") from None


def _join(rules: list[Rule], tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
          where: str, family: Family, ignored: tuple[str, ...]) -> dict[str, torch.Tensor]:
    missing = [n for r in rules for n in r.theirs if n not in tensors]
    if missing:
        raise InteropError(f"{where}: missing tensors for a {family.name} model with this config: {few(missing)}")
    used = {n for r in rules for n in r.theirs}
    extra = sorted(n for n in tensors if n not in used and not any(re.search(p, n) for p in ignored))
    if extra:
        raise InteropError(f"{where}: tensors this {family.name} config does not explain: {few(extra)}")
    state = {}
    for rule in rules:
        want = tuple(expected[rule.ours].shape)
        try:  # a regrouping rule (per-head fused q | k | v) cannot even reshape tensors of another config's size
            tensor = rule.join([tensors[n] for n in rule.theirs])
        except (RuntimeError, ValueError):
            tensor = None
        if tensor is None or tuple(tensor.shape) != want:
            shapes = ", ".join(f"{n} {tuple(tensors[n].shape)}" for n in rule.theirs)
            raise InteropError(f"{where}: {shapes} do not fit the config (stackform's {rule.ours} needs {want})")
        state[rule.ours] = tensor
    return state


def _check_size(spec: Spec, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Before building: the config's model, sized by arithmetic, must not need far more numbers than
    the folder's safetensors hold (twice as many, and a million more: a small mismatch gets the precise
    message about the tensors after building), nor more memory than this machine has."""
    from ..checkpoint_check import stored_elements
    from ..size import ModelSizeError, check_fits, sample_model

    try:
        sample = sample_model(spec, where)
        parts = stored_elements(sample)
        need, have = sum(parts.values()), sum(t.numel() for t in tensors.values())
        if need > 2 * have + (1 << 20):
            key = max(parts, key=lambda k: parts[k])
            raise InteropError(f"{where}: the config describes a model of {need:,} weights (its {key} part is the "
                               f"largest) but the folder's safetensors hold {have:,} numbers")
        check_fits(sample.bytes_by_part(), torch.device("cpu"), "importing this model", f"{where}: ",
                   force_hint="import it on a machine with more memory")
    except ModelSizeError as exc:
        raise InteropError(str(exc)) from None


def _floating_dtype(tensors: dict[str, torch.Tensor]) -> torch.dtype:
    return next((t.dtype for t in tensors.values() if t.dtype.is_floating_point), torch.float32)


def import_hf(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, name: str | None = None,
              dtype: torch.dtype | None = None, overwrite: bool = False) -> StackformModel:
    """Read a Hugging Face folder (config.json + safetensors) of a supported family into a stackform model.

    With ``out``, also write ``out/spec.yaml`` and the checkpoint ``out/model.safetensors`` (files already
    there are replaced only with ``overwrite``, which also deletes a replaced run's train_state.safetensors).
    ``dtype`` defaults to the weights' own. Every problem raises InteropError (a StackformError).
    """
    folder = Path(folder)
    if out is not None:
        check_import_out(Path(out), overwrite)
    raw = read_config(folder)
    where = str(folder / CONFIG)
    family = family_of(raw, where)
    tensors = family.normalize(read_tensors(folder))
    data = spec_of_config(family, raw, where, set(tensors), name or _spec_name(folder))
    spec = _validated(data, where)
    _check_size(spec, tensors, where)
    model = build_model(spec)
    expected = model.state_dict()
    state = _join(family.rules(spec.model), tensors, expected, str(folder), family, family.ignored(spec.model))
    _, tied = unique_tensors(expected)
    for alias, source in tied.items():
        state.setdefault(alias, state[source])
    model.load_state_dict(state, strict=True)
    model = model.to(dtype or _floating_dtype(tensors)).eval()  # computed tables stay float32 (Positional)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    import_tokenizer(folder, Path(out) if out is not None else None, data, model)  # tokenizer.json, if any
    model.spec = _validated(data, where)  # now naming its tokenizer and init_from
    if out is not None:
        # an overwritten run's training state belongs to the replaced model: never resume the new one with it
        (Path(out) / "train_state.safetensors").unlink(missing_ok=True)
        write_import(model, data, Path(out))
    return model


def _mismatch(family: Family, model: ModelSpec, who: str) -> tuple[int, str]:
    """(how many differences, the first one) between the spec and what this family's config.json
    can hold; (0, "") when it fits."""
    try:
        config = family.config(model)
        data = spec_of_config(family, config, "<export>", None, "export")
        again = load_spec(data).model
    except (AttributeError, KeyError, TypeError, ValueError, StackformError) as exc:
        misfit = family.misfit(model, who)  # why, in words: another kind, a block type the family lacks
        return 1000, misfit or f"its config.json cannot be written ({type(exc).__name__}: {exc})"
    found = differences(canonical(model), canonical(again))
    if not found:
        return 0, ""
    path, ours, theirs = found[0]
    problem = f"model.{path}: spec has {ours!r}, {family.name} needs {theirs!r}"
    if any(p == "kind" for p, _, _ in found):  # prefer families of the same kind
        return len(found) + 500, family.misfit(model, who) or problem
    return len(found), problem


class FamilyError(InteropError):
    """A family named for export that does not exist or cannot hold the spec; ``problem`` says why."""

    def __init__(self, family: str, problem: str, message: str):
        self.family, self.problem = family, problem
        super().__init__(message)


def find_family(model: ModelSpec, name: str | None = None, *, who: str = "the spec") -> Family:
    """The family that holds this architecture without loss, else InteropError with the closest miss
    (``who`` names the spec in it: its name). A named family that does not fit raises FamilyError."""
    families = [f for f in FAMILIES if name is None or name == f.name or name in f.model_types]
    if not families:
        families_list = ", ".join(f.name for f in FAMILIES)
        raise FamilyError(str(name), f"unknown family (families: {families_list})",
                          f"unknown family {name!r} (families: {families_list})")
    misses = []
    for family in families:
        count, problem = _mismatch(family, model, who)
        if not count:
            return family
        misses.append((count, family.name, problem))
    _, closest, problem = min(misses)
    if name:
        raise FamilyError(name, problem, f"cannot export: the spec does not fit the {closest} family: {problem}")
    raise InteropError(f"cannot export: no Hugging Face family fits this spec; the closest, {closest}, differs at "
                       f"{problem}")


def export_hf(model: "StackformModel | str | os.PathLike", out: str | os.PathLike, *,
              family: str | None = None) -> Path:
    """Write a Hugging Face folder (config.json, generation_config.json, model.safetensors) for a
    stackform model or checkpoint of a supported family; ``AutoModel*.from_pretrained(out)`` loads it.
    """
    source = model
    if not isinstance(model, torch.nn.Module):
        model = load(model)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise InteropError("export_hf: only models built by stackform can be exported (no .spec)")
    if spec.train.lora is not None:
        raise InteropError("export_hf: this model carries LoRA adapters (train.lora); merge them first: "
                           "stackform merge-lora RUN --out DIR")
    found = find_family(spec.model, family, who=spec.name)
    state, tied = unique_tensors(model.state_dict())
    tensors: dict[str, torch.Tensor] = {}
    used = set()
    for rule in found.rules(spec.model):
        ours = tied.get(rule.ours, rule.ours)
        used.add(ours)
        tensors.update(zip(rule.theirs, rule.split(state[ours])))
    for copy, source in found.copies(spec.model).items():
        tensors[copy] = tensors[source].clone()
    left = sorted(set(state) - used)
    if left:
        raise InteropError(f"export_hf: the {found.name} mapping has no place for: {few(left)}")
    dtype = _floating_dtype(tensors)
    dtype_name = str(dtype).removeprefix("torch.")
    config = _without_none(found.config(spec.model)) | {"dtype": dtype_name, "torch_dtype": dtype_name}
    folder = write_folder(out, config, tensors, found.generation(spec.model))
    export_tokenizer(model, source, folder)  # tokenizer.json when the model has one
    return folder

