"""Attention weights of one sequence, per layer and head, as labelled maps.

The model runs once with ``return_attention=True`` (the explicit attention path); the
default path, SDPA, is untouched. ``generated_attention`` generates first and then runs
the model once more over the final sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stackform.assemble.generation import generate, generate_seq2seq
from stackform.assemble.models import DecoderModel, EncoderDecoderModel, EncoderModel, StackformModel
from stackform.assemble.tokenizers.resolve import tokenizer_of

from .errors import VizError
from .tokens import token_labels

TITLES = {"encoder": "encoder self-attention", "decoder": "decoder self-attention",
          "cross": "encoder-decoder attention"}


@dataclass
class AttentionMap:
    """The weights of one attention kind: ``weights`` [layers, heads, queries, keys], rows sum to 1."""

    kind: str  # "encoder" | "decoder" | "cross"
    weights: torch.Tensor
    queries: list[str]  # a label per query (row)
    keys: list[str]  # a label per key (column)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]


@dataclass
class Generation:
    """A generated sequence and the attention of the model run over it."""

    ids: torch.Tensor  # decoder: prompt + new tokens [b, t]; encoder-decoder: bos + targets [b, 1 + n]
    attentions: dict[str, list[torch.Tensor]]  # as ModelOutput.attentions: per layer [b, h, t, s]


def _row(ids: torch.Tensor | list[int], name: str) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[None]  # [1, t]
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise VizError(f"{name}: expected one non-empty sequence [t] or [1, t], got shape {tuple(ids.shape)}")
    return ids


@torch.no_grad()
def _forward_attention(model: StackformModel, *args: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """``model(*args, return_attention=True)`` in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        return model(*args, return_attention=True, logits=False).attentions
    finally:
        model.train(was_training)


def model_attention(model: StackformModel, ids: torch.Tensor | list[int],
                    tgt_ids: torch.Tensor | list[int] | None = None) -> dict[str, torch.Tensor]:
    """{"encoder" | "decoder" | "cross": weights [layers, heads, t, s]} of one sequence (float32, cpu).

    ``ids`` is the input of a decoder or encoder, or the source of an encoder-decoder, whose
    decoder inputs are ``tgt_ids``.
    """
    device = next(model.parameters()).device
    ids = _row(ids, "ids").to(device)
    if isinstance(model, EncoderDecoderModel):
        if tgt_ids is None:
            raise VizError("tgt_ids: an encoder-decoder model needs decoder inputs (bos + target)")
        found = _forward_attention(model, ids, _row(tgt_ids, "tgt_ids").to(device))
        names = {"encoder": "encoder", "self": "decoder", "cross": "cross"}
    else:
        if tgt_ids is not None:
            raise VizError(f"tgt_ids: a {model.spec.model.kind} model reads one sequence; give only ids")
        found = _forward_attention(model, ids)
        names = {"self": "encoder" if isinstance(model, EncoderModel) else "decoder"}
    order = list(TITLES)
    maps = {names[key]: torch.stack([w[0].float().cpu() for w in layers]) for key, layers in found.items()}
    return {kind: maps[kind] for kind in sorted(maps, key=order.index)}  # each [layers, heads, t, s]


def attention_maps(model: StackformModel, ids: torch.Tensor | list[int],
                   tgt_ids: torch.Tensor | list[int] | None = None) -> list[AttentionMap]:
    """Labelled maps of one sequence: encoder, decoder and cross attention, as the model has them."""
    tok = tokenizer_of(model, None)
    src = token_labels(_row(ids, "ids")[0].tolist(), tok)
    tgt = token_labels(_row(tgt_ids, "tgt_ids")[0].tolist(), tok) if tgt_ids is not None else src
    out = []
    for kind, weights in model_attention(model, ids, tgt_ids).items():
        queries = src if kind == "encoder" else tgt
        keys = tgt if kind == "decoder" else src
        out.append(AttentionMap(kind, weights, queries, keys))
    return out


def generated_attention(model: DecoderModel | EncoderDecoderModel, ids: torch.Tensor, max_new_tokens: int,
                        **generate_kwargs) -> Generation:
    """Generate (``generate`` / ``generate_seq2seq`` with their keyword arguments), then run the model
    once more over the final sequence with ``return_attention=True``.

    Decoder: ``ids`` is the prompt [b, t]; the attention covers prompt + new tokens.
    Encoder-decoder: ``ids`` is the source [b, s]; the decoder inputs are bos + the targets.
    """
    if isinstance(model, EncoderDecoderModel):
        out = generate_seq2seq(model, ids, max_new_tokens, **generate_kwargs)  # [b, n]
        bos = model.spec.model.bos_id
        if bos is None:
            raise VizError("generated_attention: the spec has no bos_id to start the decoder with")
        tgt = torch.cat((out.new_full((out.shape[0], 1), bos), out), dim=1)  # [b, 1 + n]
        tgt = tgt[:, : model.spec.model.max_len]
        return Generation(tgt, _forward_attention(model, ids, tgt))
    if isinstance(model, DecoderModel):
        seq = generate(model, ids, max_new_tokens, **generate_kwargs)  # [b, t + n]
        return Generation(seq, _forward_attention(model, seq))
    raise VizError(f"generated_attention: a {model.spec.model.kind} model cannot generate (it has no decoder)")


def _fit(ids: list[int], what: str, max_len: int) -> list[int]:
    if len(ids) > max_len:
        raise VizError(f"{what} is {len(ids)} tokens long, more than max_len {max_len} of the spec")
    return ids


def text_attention(model: StackformModel, text: str, tgt: str | None = None, max_new: int = 0) -> list[AttentionMap]:
    """Maps for a text, tokenized as training does (bytes).

    Encoder: the text. Decoder: ``<eos>`` (a document start, as ``stackform generate`` does) +
    the text, continued greedily by ``max_new`` tokens. Encoder-decoder: the text is the
    source; the decoder reads ``<bos>`` + ``tgt``, or + the model's own greedy output when
    ``tgt`` is None.
    """
    spec = model.spec.model
    tok = tokenizer_of(model, None)
    if not text:
        raise VizError("text: empty; give at least one character")
    if max_new < 0:
        raise VizError(f"max_new: {max_new} is negative")
    if spec.kind != "encoder_decoder" and tgt is not None:
        raise VizError(f"tgt: a {spec.kind} model reads one text; put all of it in the text")
    device = next(model.parameters()).device
    if spec.kind == "encoder":
        if max_new:
            raise VizError("max_new: an encoder model cannot generate")
        return attention_maps(model, _fit(tok.encode(text), "text", spec.max_len))
    if spec.kind == "decoder":
        ids = _fit(tok.prompt(text), "text (after the leading <eos>)", spec.max_len)
        if max_new:
            ids = generated_attention(model, torch.tensor([ids], device=device), max_new, temperature=0.0).ids[0]
        return attention_maps(model, ids)
    src = _fit(tok.encode(text), "text (the source)", spec.max_len)
    if tgt is not None:
        return attention_maps(model, src, _fit([tok.bos_id] + tok.encode(tgt), "tgt (after <bos>)", spec.max_len))
    n = max_new or spec.max_len - 1
    out = generated_attention(model, torch.tensor([src], device=device), n, temperature=0.0).ids[0].tolist()
    if tok.eos_id in out:
        out = out[: out.index(tok.eos_id)]  # show the decoder inputs up to the end of the output
    return attention_maps(model, src, out)
