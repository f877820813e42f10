"""One forward pass of a batch: hidden states only (the loss projects them through the head in chunks)."""

from __future__ import annotations

from typing import Callable

import torch

Batch = dict[str, torch.Tensor]


def to_device(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cpu":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def hidden_states(model: Callable, batch: Batch) -> torch.Tensor:
    """hidden [b, t, d] of the decoder (seq2seq: given the source) or of the stack."""
    if "src_document_ids" in batch:  # packed pairs (train.packing)
        return model(batch["src_ids"], batch["tgt_ids"], batch["src_mask"], batch["tgt_mask"], logits=False,
                     src_document_ids=batch["src_document_ids"], tgt_document_ids=batch["tgt_document_ids"]).hidden
    if "src_ids" in batch:
        return model(batch["src_ids"], batch["tgt_ids"], logits=False).hidden
    if "document_ids" in batch:  # packed documents (train.packing)
        return model(batch["input_ids"], document_ids=batch["document_ids"], logits=False).hidden
    return model(batch["input_ids"], logits=False).hidden


def input_tokens(batch: Batch, pad_id: int | None) -> int:
    """Tokens that went in (padding not counted); for tokens/s."""
    ids = [batch[k] for k in ("input_ids", "src_ids", "tgt_ids") if k in batch]
    if pad_id is None:
        return sum(t.numel() for t in ids)
    return sum(int((t != pad_id).sum()) for t in ids)
