"""``stackform generate RUN_OR_CKPT [--prompt TEXT | --src TEXT] ...``: print generated text."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from stackform.assemble.checkpoint import load
from stackform.assemble.generation import GenerationError, generate, generate_seq2seq
from stackform.assemble.generation.checks import not_generative
from stackform.assemble.models import DecoderModel, EncoderDecoderModel
from stackform.assemble.tokenizers.resolve import tokenizer_of
from stackform.registry import StackformError, printable



def show(text: str) -> str:
    """Generated text as printed: raw into a pipe or file (it is the product); on a terminal, as
    ``ls`` does, its control characters are escaped (lines and tabs kept), so a model cannot move
    the cursor, retitle the window or rewrite the screen."""
    return printable(text, keep="\n\t") if sys.stdout.isatty() else text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run folder with model.safetensors, or a .safetensors file")
    p.add_argument("--prompt", help="text to continue (decoder models); default: start a new document")
    p.add_argument("--src", help="source text to transform (encoder-decoder models)")
    p.add_argument("--ids", metavar="I,J,...", help="token ids to continue instead of --prompt (any decoder, "
                                                   "also one without a tokenizer); prints ids unless it has one")
    p.add_argument("--max-new", type=int, default=200, metavar="N", help="new tokens at most (default 200)")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="0 = greedy (default 1.0 for decoders, 0 for encoder-decoders)")
    p.add_argument("--top-k", type=int, metavar="K", help="sample from the K most likely tokens")
    p.add_argument("--top-p", type=float, metavar="P", help="sample from the smallest set with probability >= P")
    p.add_argument("--beam", type=int, default=1, metavar="B", help="beam search width (encoder-decoders)")
    p.add_argument("--alpha", type=float, default=0.6, metavar="A", help="beam search length penalty (default 0.6)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the sampling generator")
    p.add_argument("--device", default="auto", metavar="D", help="cpu, cuda, cuda:1, ... (default: cuda if present)")


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto`` -> cuda when available, else cpu; anything else must be a device
    this machine can compute on (checked like ``train.device``)."""
    from stackform.assemble.train.device import resolve_device

    try:
        return resolve_device(name, "--device")
    except StackformError as exc:
        raise GenerationError(str(exc)) from None


def text_flag(value: str | None, flag: str) -> str | None:
    """``value`` of a text flag, checked to be UTF-8: the shell passes bytes that are not UTF-8
    as lone surrogates, which the byte tokenizer cannot encode."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError as exc:
        try:
            raw = os.fsencode(value)
            start = len(os.fsencode(value[:exc.start]))
            where = f"byte 0x{raw[start]:02x} at byte offset {start}"
        except UnicodeError:
            where = f"character {exc.start}"
    raise GenerationError(f"{flag}: not UTF-8 text ({where}); give UTF-8 text")


def _generator(device: torch.device, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    try:
        return torch.Generator(device).manual_seed(seed)
    except (RuntimeError, ValueError, OverflowError):
        raise GenerationError(f"--seed {seed}: out of range; give an integer from 0 to 2**64 - 1") from None


MAX_ALPHA = 10.0  # ((5 + len) / 6) ** alpha overflows a float for a large alpha


def _check_flags(args: argparse.Namespace, model: object) -> None:
    if not -MAX_ALPHA <= args.alpha <= MAX_ALPHA:  # NaN too
        raise GenerationError(f"--alpha: {args.alpha} is out of range; give a number from -{MAX_ALPHA:g} to "
                              f"{MAX_ALPHA:g} (GNMT used 0.6)")
    if isinstance(model, EncoderDecoderModel):
        if args.prompt is not None:
            raise GenerationError("--prompt: this is an encoder-decoder model; give the source text with --src")
        if args.src is None:
            raise GenerationError("--src: an encoder-decoder model needs the source text (--src TEXT)")
    elif isinstance(model, DecoderModel):
        if args.src is not None:
            raise GenerationError("--src: this is a decoder-only model; give the text to continue with --prompt")
        if args.beam != 1:
            raise GenerationError(f"--beam: beam search ({args.beam}) is for encoder-decoder models; "
                                  "decoders sample or decode greedily")
    else:
        raise not_generative(args.checkpoint, model)


def parse_ids(text: str, vocab_size: int) -> list[int]:
    """``--ids 464,3290``: token ids, each below the model's vocab_size."""
    try:
        ids = [int(part) for part in text.replace(" ", ",").split(",") if part]
    except ValueError:
        raise GenerationError(f"--ids {text[:40]!r}: not a list of integers (e.g. --ids 464,3290)") from None
    if not ids:
        raise GenerationError("--ids: empty; give at least one token id")
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise GenerationError(f"--ids: {bad[0]} is not a token id of this model (0 to {vocab_size - 1})")
    return ids


def _continue_ids(args: argparse.Namespace, model, device: torch.device, sampling: dict) -> int:
    """``--ids``: continue these ids; print the new ids, or their text when the model has a tokenizer."""
    if args.prompt is not None:
        raise GenerationError("--ids: give either --prompt (text) or --ids (token ids), not both")
    if isinstance(model, EncoderDecoderModel):
        raise GenerationError("--ids: for decoder models; give an encoder-decoder its source with --src")
    ids = torch.tensor([parse_ids(args.ids, model.spec.model.vocab_size)], device=device)  # [1, t]
    out = generate(model, ids, args.max_new, temperature=1.0 if args.temperature is None else args.temperature,
                   **sampling)
    new = out[0, ids.shape[1]:].tolist()
    try:
        print(show(tokenizer_of(model).decode(new)))
    except StackformError:
        print(" ".join(map(str, new)))
    return 0


def run(args: argparse.Namespace) -> int:
    args.prompt, args.src = text_flag(args.prompt, "--prompt"), text_flag(args.src, "--src")
    device = pick_device(args.device)
    model = load(args.checkpoint, device=device)
    _check_flags(args, model)
    generator = _generator(device, args.seed)
    if args.ids is not None:
        return _continue_ids(args, model, device, dict(top_k=args.top_k, top_p=args.top_p, generator=generator))
    tok = tokenizer_of(model)
    sampling = dict(top_k=args.top_k, top_p=args.top_p, generator=generator)
    if isinstance(model, EncoderDecoderModel):
        if not args.src:
            raise GenerationError("--src: empty; give at least one character of source text")
        src = torch.tensor([tok.encode(args.src)], device=device)  # [1, s]
        out = generate_seq2seq(model, src, args.max_new, beam=args.beam, length_penalty=args.alpha,
                               temperature=0.0 if args.temperature is None else args.temperature, **sampling)
        print(show(tok.decode(out[0].tolist())))
        return 0
    prompt = args.prompt or ""
    # bytes and a BPE stackform trained: eos + the text (training streams end each document with eos, so
    # eos precedes a new one); an imported tokenizer.json: its own template, as transformers encodes
    ids = torch.tensor([tok.prompt(prompt)], device=device)  # [1, t]
    out = generate(model, ids, args.max_new, temperature=1.0 if args.temperature is None else args.temperature,
                   **sampling)
    print(show(prompt + tok.decode(out[0, ids.shape[1]:].tolist())))
    return 0
