"""Whether a spec's ``vocab_size`` and special ids fit its tokenizer (``stackform validate`` and
``train`` run this before anything is built): (dotted key, message) per problem."""

from __future__ import annotations

import os

from stackform.specs import Spec

from .bpe import SPECIAL_IDS, SPECIALS

MIN_VOCAB = 256 + len(SPECIALS)
from .hf import TextTokenizer, TokenizerError
from .resolve import spec_ids


def _bpe_problems(spec: Spec) -> list[tuple[str, str]]:
    model, settings = spec.model, spec.train.tokenizer
    vocab = settings.vocab_size or model.vocab_size
    if vocab > model.vocab_size:
        return [("train.tokenizer.vocab_size", f"{vocab} ids do not fit the model's vocab_size "
                                               f"({model.vocab_size}); lower it or raise model.vocab_size")]
    if vocab < MIN_VOCAB:
        return [("model.vocab_size", f"{vocab} is too small for a bpe tokenizer: its 256 byte tokens and "
                                     f"{len(SPECIALS)} special tokens need {MIN_VOCAB}")]
    problems = []
    for (name, wanted), token in zip(SPECIAL_IDS.items(), SPECIALS):
        value = getattr(model, name)
        if value is None and name == "mask_id":
            continue  # pad_id's value
        if value is None:
            problems.append((f"model.{name}", f"not set; the bpe tokenizer's {token} is id {wanted}: "
                                              f"set model.{name}: {wanted}"))
        elif value != wanted:
            problems.append((f"model.{name}", f"{value}, but the bpe tokenizer's {token} is id {wanted}: "
                                              f"set model.{name}: {wanted}"))
    return problems


def _specials(tok: TextTokenizer) -> str:
    shown = ", ".join(f"{text} = {i}" for text, i in sorted(tok.special_tokens.items(), key=lambda x: x[1])[:6])
    return f"its special tokens: {shown}" if shown else "it has no special tokens"


def _file_problems(spec: Spec) -> list[tuple[str, str]]:
    model = spec.model
    try:
        tok = TextTokenizer.from_file(os.path.expanduser(spec.train.tokenizer.path), **spec_ids(model))
    except TokenizerError as exc:
        return [("train.tokenizer.path", str(exc))]
    if tok.size > model.vocab_size:
        return [("model.vocab_size", f"{model.vocab_size}, but {spec.train.tokenizer.path} has {tok.size} tokens; "
                                     f"set model.vocab_size to at least {tok.size}")]
    problems = []
    if model.eos_id is None:
        problems.append(("model.eos_id", f"not set; training ends each document with eos ({_specials(tok)})"))
    for name in SPECIAL_IDS:
        value = getattr(model, name)
        if value is not None and value >= tok.size:
            problems.append((f"model.{name}", f"{value} is not a token of {spec.train.tokenizer.path} "
                                              f"({tok.size} tokens; {_specials(tok)})"))
    return problems


def vocab_tokenizer_problems(spec: Spec) -> list[tuple[str, str]]:
    """Problems of a spec whose tokenizer is bpe, file or none (bytes: ``trainable.tokenizer_problems``)."""
    kind = spec.train.tokenizer.type
    if kind == "none":
        return [("train.tokenizer", "none: this model has no tokenizer, so it cannot train on text; give "
                                    "{type: file, path: tokenizer.json} or {type: bpe}")]
    return _bpe_problems(spec) if kind == "bpe" else _file_problems(spec)
