"""The three assembled model kinds: encoder, decoder-only and encoder-decoder."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from stackform.blocks import LayerCache, LMHead, Stack, TokenEmbedding
from stackform.specs import Spec

from .errors import ModelInputError
from .inputs import (
    INTEGER_IDS, bind_cache, check_device, check_ids, check_memory, check_prefix_len, describe, keep_mask,
)


@dataclass
class Cache:
    """Key/value caches of every layer of a decoder stack, and how many positions they hold."""

    layers: list[tuple[LayerCache, LayerCache]]
    offset: int = 0
    padding: torch.Tensor | None = None  # [b, offset] True = real token; kept only when keys are masked
    owner: Any = field(default=None, repr=False, compare=False)  # weakref to the model, bound on first use

    def reorder(self, index: torch.Tensor) -> None:
        for self_cache, cross_cache in self.layers:
            self_cache.reorder(index)
            cross_cache.reorder(index)
        if self.padding is not None:
            self.padding = self.padding.index_select(0, index)

    def key_padding(self, padding: torch.Tensor | None, t: int, full: bool) -> torch.Tensor | None:
        """The key padding of the cached and the ``t`` new positions, [b, offset + t], remembered for
        later steps. ``full``: ``padding`` already covers them (an explicit mask); else it covers the new ones."""
        if full or (padding is None and self.padding is None):
            self.padding = padding
            return padding
        if padding is None:
            padding = self.padding.new_ones(self.padding.shape[0], t)  # [b, t]
        past = self.padding if self.padding is not None else padding.new_ones(padding.shape[0], self.offset)
        self.padding = torch.cat((past, padding), dim=1)  # [b, offset + t]
        return self.padding


@dataclass
class ModelOutput:
    """What a model returns when more than logits is asked for."""

    logits: torch.Tensor | None
    hidden: torch.Tensor | None = None
    attentions: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # "self"/"cross"/"encoder": per layer
    cache: Cache | None = None


def _split_weights(weights: list | None, prefix: str = "") -> dict[str, list[torch.Tensor]]:
    out: dict[str, list[torch.Tensor]] = {}
    for kind, w in weights or []:
        out.setdefault(prefix or kind, []).append(w)
    return out


class StackformModel(nn.Module):
    """Base of assembled models: holds the validated spec and checks inputs at the boundary."""

    spec: Spec
    check_inputs: bool = True  # eager-mode id/length checks (one host sync for the id range)

    def _device(self) -> torch.device:
        """Where the weights are: every input must be there too."""
        embed = self.embed if hasattr(self, "embed") else self.src_embed
        return embed.weight.device

    def _check_ids(self, ids: object, name: str, offset: int = 0, batch: int | None = None) -> None:
        """Shape, dtype, device, length (always) and id range (eager mode, ``check_inputs``) of token ids."""
        model = self.spec.model
        check_ids(ids, name, device=self._device(), max_len=model.max_len, vocab_size=model.vocab_size,
                  offset=offset, batch=batch, check_values=self.check_inputs)

    def _key_padding(self, ids: torch.Tensor, mask: object, name: str, stack: Stack,
                     total: int | None = None) -> torch.Tensor | None:
        """The key padding [b, total] (True = a real token) from ``mask`` (read by ``keep_mask``), or from pad_id."""
        if mask is not None:
            shape = (ids.shape[0], total if total is not None else ids.shape[1])
            return keep_mask(mask, name, shape, ids.device, check_values=self.check_inputs)
        pad_id = self.spec.model.pad_id
        if pad_id is not None and any(getattr(m, "uses_padding", False) for m in stack.masks):
            return ids != pad_id
        return None

    def _check_token_types(self, ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> None:
        if token_type_ids is None:
            return
        types = getattr(self.embed, "token_types", None)
        if types is None:
            raise ModelInputError("token_type_ids: this model has no token types (the spec sets no model.token_type)")
        if not isinstance(token_type_ids, torch.Tensor) or tuple(token_type_ids.shape) != tuple(ids.shape):
            shape = getattr(token_type_ids, "shape", type(token_type_ids).__name__)
            raise ModelInputError(f"token_type_ids: shape {shape} does not match input_ids {tuple(ids.shape)}")
        if token_type_ids.dtype not in INTEGER_IDS:
            raise ModelInputError(f"token_type_ids: expected integers (torch.long or torch.int32), "
                                  f"got {token_type_ids.dtype}")
        check_device(token_type_ids, "token_type_ids", ids.device, "the ids")
        if self.check_inputs and token_type_ids.numel() and not torch.compiler.is_compiling():
            low, high = int(token_type_ids.min()), int(token_type_ids.max())
            if low < 0 or high >= types.n_types:
                bad = low if low < 0 else high
                raise ModelInputError(f"token_type_ids: type {bad} is outside [0, {types.n_types})")

    def _check_documents(self, ids: torch.Tensor, documents: object, cache: object, name: str = "document_ids",
                         stack: Stack | None = None) -> None:
        """``documents`` [b, t] (packed sequences): integers, the shape of the ids, no KV cache, and a
        positional block of ``stack`` whose positions can restart at each document."""
        if documents is None:
            return
        if cache is not None:
            raise ModelInputError(f"{name}: packed documents are for training and scoring, not a KV cache")
        if not isinstance(documents, torch.Tensor) or tuple(documents.shape) != tuple(ids.shape):
            shape = getattr(documents, "shape", type(documents).__name__)
            raise ModelInputError(f"{name}: shape {shape} does not match {tuple(ids.shape)} (the ids)")
        if documents.dtype not in INTEGER_IDS:
            raise ModelInputError(f"{name}: expected integers (torch.long or torch.int32), got {documents.dtype}")
        check_device(documents, name, ids.device, "the ids")
        if stack is None:
            return
        positional = stack.positional
        if positional.biases and not positional.relative_scores:
            raise ModelInputError(f"{name}: the positional block ({type(positional).__name__}) biases scores by "
                                  "absolute positions, which cannot restart at each packed document")

    def num_parameters(self) -> int:
        """Parameters counted once (tied weights once)."""
        return sum(p.numel() for p in self.parameters())


class DecoderModel(StackformModel):
    """Decoder-only language model: ``model(input_ids, attention_mask=None) -> logits [b, t, vocab]``.

    ``token_type_ids`` [b, t] picks token-type embeddings when the spec has ``token_type``.
    """

    def __init__(self, spec: Spec, embed: TokenEmbedding, stack: Stack, head: LMHead):
        super().__init__()
        self.spec, self.embed, self.stack, self.head = spec, embed, stack, head

    def new_cache(self) -> Cache:
        """An empty cache for this model (one batch, up to max_len positions)."""
        return Cache([(LayerCache(), LayerCache()) for _ in self.stack.layers], owner=weakref.ref(self))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: Cache | None = None,
        prefix_len: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        return_attention: bool = False,
        logits: bool = True,
    ) -> torch.Tensor | ModelOutput:
        offset = cache.offset if isinstance(cache, Cache) else 0
        self._check_documents(input_ids, document_ids, cache, stack=self.stack)
        self._check_ids(input_ids, "input_ids", offset)
        b, t = input_ids.shape
        if cache is not None:
            bind_cache(cache, self, len(self.stack.layers), b, input_ids.device)
        prefix_len = check_prefix_len(prefix_len, b, input_ids.device, check_values=self.check_inputs)
        padding = self._key_padding(input_ids, attention_mask, "attention_mask", self.stack, offset + t)
        if cache is not None:
            padding = cache.key_padding(padding, t, full=attention_mask is not None)
        ctx = self.stack.context(t, offset, input_ids.device, padding, prefix_len, document_ids)
        self._check_token_types(input_ids, token_type_ids)
        x = self.embed(input_ids, self.stack.positional, ctx.positions, token_type_ids)
        weights = [] if return_attention else None
        h = self.stack(x, ctx, cache=cache.layers if cache is not None else None, weights=weights)
        if cache is not None:
            cache.offset += t
        out = self.head(h) if logits else None
        if not (return_hidden or return_attention or cache is not None or not logits):
            return out
        return ModelOutput(out, h, _split_weights(weights), cache)


class EncoderModel(StackformModel):
    """Bidirectional encoder with an MLM head: ``model(input_ids, attention_mask=None) -> logits``.

    ``token_type_ids`` [b, t] picks token-type embeddings when the spec has ``token_type`` (BERT).
    ``document_ids`` [b, t] (packed documents): attention stays within a document, positions restart.
    """

    def __init__(self, spec: Spec, embed: TokenEmbedding, stack: Stack, head: LMHead):
        super().__init__()
        self.spec, self.embed, self.stack, self.head = spec, embed, stack, head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        token_type_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        return_attention: bool = False,
        logits: bool = True,
    ) -> torch.Tensor | ModelOutput:
        self._check_ids(input_ids, "input_ids")
        self._check_token_types(input_ids, token_type_ids)
        self._check_documents(input_ids, document_ids, None, stack=self.stack)
        padding = self._key_padding(input_ids, attention_mask, "attention_mask", self.stack)
        ctx = self.stack.context(input_ids.shape[1], 0, input_ids.device, padding, None, document_ids)
        x = self.embed(input_ids, self.stack.positional, ctx.positions, token_type_ids)
        weights = [] if return_attention else None
        h = self.stack(x, ctx, weights=weights)
        out = self.head(h) if logits else None
        if not (return_hidden or return_attention or not logits):
            return out
        return ModelOutput(out, h, _split_weights(weights))


class EncoderDecoderModel(StackformModel):
    """``model(src_ids, tgt_ids, src_mask=None, tgt_mask=None) -> logits [b, t_tgt, vocab]``.

    Packed pairs: ``src_document_ids`` [b, s] and ``tgt_document_ids`` [b, t] (given together) keep
    each side's self-attention within a document and a target's cross-attention on its own source
    (the document mask compares the decoder's ids with the encoder's); positions restart on both sides.
    """

    def __init__(self, spec: Spec, src_embed: TokenEmbedding, tgt_embed: TokenEmbedding,
                 encoder: Stack, decoder: Stack, head: LMHead):
        super().__init__()
        self.spec, self.src_embed, self.tgt_embed = spec, src_embed, tgt_embed
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def new_cache(self) -> Cache:
        """An empty cache for this model (one batch, up to max_len positions)."""
        return Cache([(LayerCache(), LayerCache()) for _ in self.decoder.layers], owner=weakref.ref(self))

    def encode(self, src_ids: torch.Tensor, src_mask: torch.Tensor | None = None,
               weights: list | None = None, documents: torch.Tensor | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """src [b, s] -> (memory [b, s, d], source padding [b, s] or None); ``documents`` [b, s]: packed sources."""
        self._check_ids(src_ids, "src_ids")
        self._check_documents(src_ids, documents, None, "src_document_ids", self.encoder)
        padding = self._key_padding(src_ids, src_mask, "src_mask", self.encoder)
        ctx = self.encoder.context(src_ids.shape[1], 0, src_ids.device, padding, None, documents)
        x = self.src_embed(src_ids, self.encoder.positional, ctx.positions)
        return self.encoder(x, ctx, weights=weights), padding

    def decode(self, tgt_ids: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor | None,
               tgt_mask: torch.Tensor | None = None, cache: Cache | None = None,
               weights: list | None = None, documents: torch.Tensor | None = None,
               memory_documents: torch.Tensor | None = None) -> torch.Tensor:
        """tgt [b, t] attending to memory -> hidden states [b, t, d]. Packed pairs: ``documents`` [b, t]
        of the targets and ``memory_documents`` [b, s] of their sources."""
        check_memory(memory, memory_padding, self.spec.model.d_model, self._device())
        offset = cache.offset if isinstance(cache, Cache) else 0
        self._check_ids(tgt_ids, "tgt_ids", offset, batch=memory.shape[0])
        if (documents is None) != (memory_documents is None):
            raise ModelInputError("src_document_ids and tgt_document_ids: packed pairs need both or neither")
        self._check_documents(tgt_ids, documents, cache, "tgt_document_ids", self.decoder)
        self._check_documents(memory[..., 0], memory_documents, cache, "src_document_ids")
        t = tgt_ids.shape[1]
        if cache is not None:
            bind_cache(cache, self, len(self.decoder.layers), tgt_ids.shape[0], tgt_ids.device, memory.shape[1])
        padding = self._key_padding(tgt_ids, tgt_mask, "tgt_mask", self.decoder, offset + t)
        if cache is not None:
            padding = cache.key_padding(padding, t, full=tgt_mask is not None)
        ctx = self.decoder.context(t, offset, tgt_ids.device, padding, None, documents)
        s = memory.shape[1]
        positions = torch.arange(s, device=memory.device)
        memory_ctx = type(ctx)(None, [], ctx.info.q_pos, positions, memory_padding, documents=memory_documents,
                               query_documents=documents)  # packed: a target sees its own source only
        x = self.tgt_embed(tgt_ids, self.decoder.positional, ctx.positions)
        h = self.decoder(x, ctx, memory, memory_ctx, cache.layers if cache is not None else None, weights)
        if cache is not None:
            cache.offset += t
        return h

    def forward(
        self,
        src_ids: torch.Tensor,
        tgt_ids: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        *,
        cache: Cache | None = None,
        memory: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        src_document_ids: torch.Tensor | None = None,
        tgt_document_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        return_attention: bool = False,
        logits: bool = True,
    ) -> torch.Tensor | ModelOutput:
        enc_weights = [] if return_attention else None
        if memory is not None and (not isinstance(memory, (tuple, list)) or len(memory) != 2):
            raise ModelInputError(f"memory: expected (states, padding) as model.encode returns, got {describe(memory)}")
        memory_states, memory_padding = memory if memory is not None else \
            self.encode(src_ids, src_mask, enc_weights, src_document_ids)
        dec_weights = [] if return_attention else None
        h = self.decode(tgt_ids, memory_states, memory_padding, tgt_mask, cache, dec_weights,
                        tgt_document_ids, src_document_ids)
        out = self.head(h) if logits else None
        if not (return_hidden or return_attention or cache is not None or not logits):
            return out
        attentions = {**_split_weights(enc_weights, "encoder"), **_split_weights(dec_weights)}
        return ModelOutput(out, h, attentions, cache)
