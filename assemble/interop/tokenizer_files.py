"""The tokenizer files of a Hugging Face folder: ``import-hf`` copies ``tokenizer.json`` (and
``tokenizer_config.json`` / ``special_tokens_map.json``, which name its special tokens) into the
import, and the spec says so; ``export-hf`` writes them back. Each is size-checked and parsed as
JSON before it is copied; nothing in them is executed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write
from .files import InteropError, read_json_object

TOKENIZER_FILE = "tokenizer.json"
SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json")


def _copy_json(source: Path, target: Path, what: str) -> None:
    read_json_object(source, what)  # bounded, an object: then the bytes are copied as they are
    atomic_write(target, source.read_bytes())


def import_tokenizer(folder: Path, out: Path | None, data: dict[str, Any], model: Any) -> None:
    """Give the import its tokenizer: ``data['train']`` names it (``none`` without one), ``model.tokenizer``
    is it; with ``out``, the files are copied there and the checkpoint will name tokenizer.json."""
    train = data.setdefault("train", {})
    train["init_from"] = "."  # `stackform train OUT/spec.yaml` fine-tunes these weights, never random ones
    source = folder / TOKENIZER_FILE
    if not os.path.lexists(source):
        train["tokenizer"] = "none"
        return
    train["tokenizer"] = {"type": "file", "path": TOKENIZER_FILE}
    from ..tokenizers import TextTokenizer, TokenizerError, spec_ids, tokenizer_meta

    try:
        tok = TextTokenizer.from_file(source, **spec_ids(model.spec.model))
    except TokenizerError as exc:
        raise InteropError(str(exc)) from None
    model.tokenizer, model.tokenizer_meta, model.tokenizer_problem = tok, tokenizer_meta(tok), None
    if out is None:
        return
    atomic_write(out / TOKENIZER_FILE, tok.json_text.encode("utf-8"))
    for name in SIDE_FILES:
        if (folder / name).is_file():
            _copy_json(folder / name, out / name, name)


def export_tokenizer(model: Any, checkpoint: Any, out: Path) -> list[str]:
    """Write the model's tokenizer.json (and the side files beside its checkpoint) into ``out``."""
    tok = getattr(model, "tokenizer", None)
    if tok is None or getattr(tok, "kind", "bytes") == "bytes":
        return []
    atomic_write(out / TOKENIZER_FILE, tok.json_text.encode("utf-8"))
    written = [TOKENIZER_FILE]
    folder = Path(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) and os.path.isdir(checkpoint) else \
        Path(checkpoint).parent if isinstance(checkpoint, (str, os.PathLike)) else None
    spec = model.spec.model
    for name in SIDE_FILES:
        if folder is not None and (folder / name).is_file():
            _copy_json(folder / name, out / name, name)
            written.append(name)
    if "tokenizer_config.json" not in written:  # what AutoTokenizer needs to find its special tokens
        config = {"tokenizer_class": "PreTrainedTokenizerFast"}
        for key, value in (("bos_token", spec.bos_id), ("eos_token", spec.eos_id), ("pad_token", spec.pad_id)):
            if value is not None and tok.hf.id_to_token(value) is not None:
                config[key] = tok.hf.id_to_token(value)
        atomic_write(out / "tokenizer_config.json", (json.dumps(config, indent=2) + "\n").encode())
        written.append("tokenizer_config.json")
    return written
