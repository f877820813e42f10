"""Which tokenizer a spec or a model uses, where its file is, and whether the spec's ids fit it.

A run folder (and an import folder) holds ``tokenizer.json`` beside ``model.safetensors``; the
checkpoint names it in its metadata (``stackform.tokenizer``: file name and SHA-256), so ``load()``
finds it. A byte model needs no file; a model with ``train.tokenizer: none`` has no tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stackform.specs import ModelSpec, Spec

from ..tokenizer import ByteTokenizer
from .hf import TextTokenizer, TokenizerError

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_KEY = "stackform.tokenizer"  # checkpoint metadata: {"file": ..., "sha256": ..., "type": ...}
SPECIAL = ("pad_id", "bos_id", "eos_id", "mask_id")


def spec_ids(model: ModelSpec) -> dict[str, int | None]:
    return {name: getattr(model, name) for name in SPECIAL}


def spec_folder(spec_like: Any) -> Path | None:
    """The folder of a spec given as a file path (relative paths in it start there); None otherwise."""
    if not isinstance(spec_like, (str, os.PathLike)):
        return None
    from stackform.specs.load import find_spec_file, zoo_dir

    try:
        path = find_spec_file(spec_like)
    except Exception:
        return None
    return None if path.parent == zoo_dir() else path.resolve().parent


def resolve_paths(spec: Spec, spec_like: Any) -> Spec:
    """``spec`` with ``train.tokenizer.path`` and ``train.init_from`` made absolute against the spec
    file's folder (unchanged for a zoo name, a dict or a Spec: relative to the current folder)."""
    base = spec_folder(spec_like) or Path.cwd()
    train, update = spec.train, {}
    if train.tokenizer.type == "file" and not os.path.isabs(os.path.expanduser(train.tokenizer.path)):
        update["tokenizer"] = train.tokenizer.model_copy(update={"path": str(base / train.tokenizer.path)})
    if train.init_from is not None and not os.path.isabs(os.path.expanduser(train.init_from)):
        update["init_from"] = os.path.normpath(base / train.init_from)
    if not update:
        return spec
    return spec.model_copy(update={"train": train.model_copy(update=update)})


def tokenizer_for(spec: Spec) -> "ByteTokenizer | TextTokenizer":
    """The tokenizer a spec names, with its ids: bytes or a file (a BPE is trained from the data)."""
    kind = spec.train.tokenizer.type
    if kind == "bytes":
        return ByteTokenizer.for_model(spec.model)
    if kind == "file":
        path = os.path.expanduser(spec.train.tokenizer.path)
        return TextTokenizer.from_file(path, **spec_ids(spec.model))
    raise TokenizerError(f"train.tokenizer: {kind}: no tokenizer file to read here")


def tokenizer_meta(tok: Any) -> str | None:
    """The checkpoint metadata naming a run's tokenizer file (None for bytes)."""
    if getattr(tok, "kind", "bytes") == "bytes":
        return None
    return json.dumps({"file": TOKENIZER_FILE, "sha256": tok.sha256, "template": tok.template}, sort_keys=True)


def save_tokenizer(folder: Path, tok: Any) -> None:
    """Write ``folder/tokenizer.json`` (atomically; unchanged when it already holds these bytes)."""
    if getattr(tok, "kind", "bytes") == "bytes":
        return
    from ..checkpoint import atomic_write

    path = folder / TOKENIZER_FILE
    data = tok.json_text.encode("utf-8")
    try:
        if path.is_file() and path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(path, data)


def attach(model: Any, checkpoint: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Give a loaded model its tokenizer (``model.tokenizer``) from the file its checkpoint names;
    when that file is missing or changed, ``model.tokenizer_problem`` says so (the weights still load)."""
    model.tokenizer, model.tokenizer_problem, model.tokenizer_meta = None, None, None
    raw = metadata.get(TOKENIZER_KEY)
    if raw is None:
        return
    folder = Path(checkpoint) if os.path.isdir(checkpoint) else Path(checkpoint).parent
    try:
        named = json.loads(raw)
        name, sha = named["file"], named["sha256"]
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ValueError(name)
    except (ValueError, KeyError, TypeError, RecursionError):
        model.tokenizer_problem = f"{checkpoint}: the tokenizer entry ({TOKENIZER_KEY}) in the metadata is damaged"
        return
    try:
        tok = TextTokenizer.from_file(folder / name, template=named.get("template", True) is not False,
                                      **spec_ids(model.spec.model))
    except TokenizerError as exc:
        model.tokenizer_problem = f"the checkpoint names its tokenizer {name}, but {exc}; copy it beside the checkpoint"
        return
    if tok.sha256 != sha:
        model.tokenizer_problem = (f"{folder / name}: not the tokenizer this checkpoint was trained with "
                                   f"(its SHA-256 differs from the one in {checkpoint})")
        return
    model.tokenizer, model.tokenizer_meta = tok, raw  # a save of this model names it again


def tokenizer_of(model: Any, ids_flag: str | None = "--ids") -> "ByteTokenizer | TextTokenizer":
    """The tokenizer that turns text into this model's ids, or one line: why not (and ``ids_flag``)."""
    hint = f"give token ids with {ids_flag} (e.g. {ids_flag} 464,3290)" if ids_flag else \
        "import it from a folder with tokenizer.json, or set train.tokenizer"
    tok = getattr(model, "tokenizer", None)
    if tok is not None:
        return tok
    problem = getattr(model, "tokenizer_problem", None)
    if problem:
        raise TokenizerError(f"{problem}; or {hint}")
    kind = model.spec.train.tokenizer.type
    if kind == "bytes":
        return ByteTokenizer.for_model(model.spec.model)
    if kind == "file" and os.path.isfile(os.path.expanduser(model.spec.train.tokenizer.path)):
        return tokenizer_for(model.spec)
    raise TokenizerError(f"this model has no tokenizer (train.tokenizer: {kind}), so it cannot read text; {hint}")
