"""Validation metrics: loss and perplexity; bits per byte (causal LM), exact match (seq2seq),
and the unigram baseline on the same masked positions (MLM)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stackform.specs import Spec

from ..data import IGNORE
from .device import autocast
from .forward import hidden_states, to_device
from .loss import chunked_cross_entropy


def _token_bytes(task, spec: Spec, device: torch.device) -> torch.Tensor:
    """Bytes of text each id stands for ([vocab]): 1 per byte id for bytes, a BPE token's length."""
    from ..tokenizer import ByteTokenizer

    tok = getattr(task, "tokenizer", None) or ByteTokenizer.for_model(spec.model)
    return torch.from_numpy(tok.token_bytes(spec.model.vocab_size)).to(device)


@torch.no_grad()
def evaluate(model, task, spec: Spec, device: torch.device, amp_dtype: torch.dtype | None,
             unigram: torch.Tensor | None = None) -> dict[str, float]:
    """Metrics over the validation batches (``train.eval_steps`` of ``train.batch_size``)."""
    was_training = model.training
    model.eval()
    kind = spec.train.task
    loss_sum, targets, byte_targets, exact, examples, unigram_sum = 0.0, 0, 0, 0, 0, 0.0
    table = _token_bytes(task, spec, device) if kind == "causal_lm" else None
    for batch in task.eval_batches(spec.train.batch_size, spec.train.eval_steps):
        batch = to_device(batch, device)
        labels = batch["labels"]
        with autocast(device, amp_dtype):
            hidden = hidden_states(model, batch)
        if kind == "seq2seq":
            logits = model.head(hidden).float()  # [b, t, vocab]
            loss_sum += float(F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="sum"))
            valid = labels != IGNORE
            targets += int(valid.sum())
            right = (logits.argmax(-1) == labels) | ~valid
            exact += int(right.all(dim=1).sum())  # teacher-forced argmax right everywhere == greedy output exact
            examples += labels.shape[0]
            continue
        with autocast(device, amp_dtype):
            total, n = chunked_cross_entropy(model.head, hidden, labels, select=kind != "causal_lm" or spec.train.packing)
        loss_sum += float(total)
        targets += n
        if kind == "causal_lm":
            # the UTF-8 bytes the predicted tokens stand for (packing: IGNORE at boundaries)
            byte_targets += int(table[labels.clamp(min=0)][labels >= 0].sum())
        elif unigram is not None:
            chosen = labels[labels != IGNORE]
            unigram_sum -= float(unigram.to(chosen.device)[chosen].sum())
    model.train(was_training)
    if not targets:  # e.g. MLM with a tiny mlm_probability: nothing was predicted, so there is no loss
        nan = float("nan")
        return {"loss": nan, "ppl": nan, {"causal_lm": "bpb", "seq2seq": "exact_match"}.get(kind, "unigram_loss"): nan}
    loss = loss_sum / targets
    metrics = {"loss": loss, "ppl": math.exp(min(loss, 50.0))}
    if kind == "causal_lm":
        metrics["bpb"] = loss_sum / math.log(2) / max(byte_targets, 1)
    elif kind == "seq2seq":
        metrics["exact_match"] = exact / max(examples, 1)
    elif unigram is not None:
        metrics["unigram_loss"] = unigram_sum / targets
    return metrics
